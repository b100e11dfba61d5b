"""The verify flow: check the repository, publish the report, fail the run if anything is damaged."""

from __future__ import annotations

from typing import Any

from flows.run_names import rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage.backend import display_url
from storage.errors import IntegrityError
from tasks.automations import emit_verify_damaged
from tasks.verify import publish_verify_report, verify_repository


@plain_flow(name="verify", flow_run_name="verify {repo}", validate_parameters=False)  # see plain_flow
def verify_flow(repo: str, read_data: bool = False, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Verify the repository at ``repo``; with ``read_data`` read back and hash every chunk.

    The report is published as an artifact either way; a damaged repository then fails the
    run (so Prefect automations and the UI flag it) with an IntegrityError carrying the report."""
    report = verify_repository(repo, options or {}, read_data)
    rename_run(f"verify {'OK' if report['ok'] else 'DAMAGED'} {display_url(repo)}")
    publish_verify_report(report, display_url(repo), repo, options or {})
    report["flow_run_id"] = current_flow_run_id()
    if not report["ok"]:
        emit_verify_damaged(display_url(repo), len(report["problems"]), report["damaged_snapshots"])
        damaged = ", ".join(s[:8] for s in report["damaged_snapshots"]) or "none"
        raise IntegrityError(
            f"The repository is damaged: {len(report['problems'])} problem(s); snapshots affected: {damaged}. "
            "See the verify report for the files.", details=report)
    return report
