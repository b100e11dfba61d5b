"""The backup flow: plan -> scan -> upload packs -> commit snapshot -> report."""

from __future__ import annotations

import time
from typing import Any

from prefect.states import Completed

from flows.run_names import backup_name, rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage import BackupSummary
from storage.backend import display_url
from storage.config import load_settings, refuse_when_disabled
from storage.errors import ChainGone
from storage.snapshots import SnapshotType
from tasks.audit_events import audited
from tasks.backup import (
    abandon_backup, commit_snapshot, plan_backup, publish_backup_report, scan_workspace, upload_packs,
)


@plain_flow(name="backup", flow_run_name="backup {source}", validate_parameters=False)  # see plain_flow
def backup_flow(source: str, repo: str, type: SnapshotType | None = None, excludes: list[str] | None = None,
                tags: list[str] | None = None, description: str = "", options: dict[str, Any] | None = None,
                compression_level: int = 3, connections: int | None = None, pack_size_mib: int = 16) -> BackupSummary:
    """Back up ``source`` into the repository at ``repo`` (created if the location is empty).

    A snapshot that lacks something that could not be read still completes the run, in a
    Completed state named "Incomplete"; its summary, report and audit event name what is
    missing under ``incomplete`` (the CLI then exits with IncompleteSnapshot's code)."""
    refuse_when_disabled(load_settings(), "back up")
    started = time.monotonic()
    options = options or {}
    with audited("backup", "started", target=source, repo=repo,
                 details={"type": type, "tags": tags or []}, options=options) as trail:
        for attempt in (1, 2):
            plan = plan_backup(repo, options, source, type, excludes or [], tags or [], description,
                               compression_level, pack_size_mib)
            try:
                scan = scan_workspace(repo, options, plan)
                stored = upload_packs(repo, options, plan, scan, connections)
                summary = commit_snapshot(repo, options, plan, stored)
                break
            except ChainGone:
                abandon_backup(repo, options, plan)
                if attempt == 2:
                    raise
                type = "full"  # its chain was forgotten while it ran: start a new one
            except BaseException:
                abandon_backup(repo, options, plan)
                raise
        summary["duration_seconds"] = round(time.monotonic() - started, 3)
        summary["flow_run_id"] = current_flow_run_id()
        rename_run(backup_name(summary["type"], summary["short_id"], summary["source"]))
        publish_backup_report(summary, display_url(repo), repo, options)
        trail.details.update(snapshot=summary["snapshot_id"], type=summary["type"], stats=summary["stats"])
        if summary["incomplete"]:
            trail.details["incomplete"] = summary["incomplete"][:100]
            trail.outcome = "incomplete"
    if summary["incomplete"]:
        # Completed (the snapshot is saved), but named so in the UI's run list; the caller
        # still gets the summary back.
        return Completed(data=summary, name="Incomplete",  # type: ignore[return-value]
                         message=f"{len(summary['incomplete'])} item(s) could not be read; see the backup report")
    return summary
