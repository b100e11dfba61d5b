"""The workflows flow: put back the Prefect deployments, schedules and automations that a
snapshot carries (``include_workflows``), on the server this run talks to."""

from __future__ import annotations

from typing import Any

from flows.runtime import current_flow_run_id, plain_flow
from tasks.audit_events import audited
from tasks.workflows import restore_workflows


@plain_flow(name="restore-workflows", flow_run_name="restore workflows of {snapshot}",
            validate_parameters=False)  # see plain_flow
def restore_workflows_flow(snapshot: str, repo: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create again (or replace, by name) every deployment and automation the snapshot's
    workflows export holds; secrets were never in it, so blocks they name must exist."""
    options = options or {}
    with audited("workflows.restore", "started", target=snapshot, repo=repo, options=options) as trail:
        result = restore_workflows(repo, options, snapshot)
        trail.details.update(snapshot=result["snapshot_id"], deployments=result["deployments"],
                             automations=result["automations"])
    result["flow_run_id"] = current_flow_run_id()
    return result
