"""The restore flow: plan (preview) -> Guardian approval -> write."""

from __future__ import annotations

import getpass
from typing import Any

from prefect.logging import get_run_logger

from flows.run_names import rename_run, restore_name
from flows.runtime import current_flow_run_id, plain_flow
from storage.backend import display_url
from storage.errors import RestoreIncomplete
from storage.config import load_settings
from tasks.approval_gate import always_ask, request_approval
from tasks.audit_events import audited
from tasks.restore import plan_restore, publish_restore_report, write_files
from tasks.verify import check_recorded_snapshots


@plain_flow(name="restore", flow_run_name="restore {snapshot} to {target}", validate_parameters=False)  # see plain_flow
def restore_flow(snapshot: str, target: str, repo: str, include: list[str] | None = None,
                 options: dict[str, Any] | None = None, requester: str | None = None,
                 connections: int | None = None, require_approval: bool = False) -> dict[str, Any]:
    """Restore ``snapshot`` (id, prefix or 'latest') of ``repo`` into ``target``.
    ``require_approval`` asks Guardian even when the policy would let this restore go ahead
    (the Python API's ``restore_backup(require_approval=True)``)."""
    options = options or {}
    requester = requester or getpass.getuser()
    with audited("restore", "requested", target=target, repo=repo, user=requester,
                 details={"snapshot": snapshot, "include": include}, options=options) as trail:
        missing = check_recorded_snapshots(repo, options) if snapshot.strip() == "latest" else []
        for warning in missing:
            get_run_logger().warning("%s; 'latest' is the newest snapshot still there", warning)
        plan = plan_restore(repo, options, snapshot, target, include)
        name = restore_name(plan["snapshot"], plan["target"])
        rename_run(name)  # from the CLI once it has answered; at once for an approver (below)
        request_approval({
            "kind": "restore", "repo": display_url(repo), "snapshot": plan["snapshot"], "target": plan["target"],
            "requester": requester,
            "target_exists": plan["target_exists"], "target_empty": plan["target_empty"],
            "preview": {"create": plan["create"], "overwrite": plan["overwrite"], "unchanged": plan["unchanged"],
                        "bytes": plan["bytes"]},
        }, settings=always_ask(load_settings()) if require_approval else None, repo=repo, options=options,
            before_asking=lambda: rename_run(name, now=True))
        result = write_files(repo, options, plan["snapshot"], plan["target"], include, plan["files"],
                             plan["bytes"], connections)
        result["flow_run_id"] = current_flow_run_id()
        result["overwritten"] = len(plan["overwrite"])
        publish_restore_report(result, plan["snapshot"], plan["target"], display_url(repo))
        if missing:
            result["warnings"] = [f"{w}; 'latest' is the newest snapshot still there" for w in missing]
        trail.details.update(snapshot=plan["snapshot"], files=result.get("files"), bytes=result.get("bytes"),
                             overwritten=result["overwritten"],
                             not_restored=sorted(result.get("not_restored", ())))
        if result.get("not_restored"):
            raise RestoreIncomplete.of(result)  # the run fails (exit 13); everything else was restored
    return result
