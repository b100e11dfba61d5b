"""The backup flow: plan -> scan -> upload packs -> commit snapshot -> report."""

from __future__ import annotations

import time
from typing import Any

from prefect.states import Completed

from flows.run_names import backup_name, rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage import BackupSummary
from storage.backend import display_url
from storage.config import load_settings, refuse_when_disabled, zstd_level
from storage.errors import ChainGone
from storage.snapshots import SnapshotType
from storage.repository.workflows import CARRIES_WORKFLOWS, carried_tags
from tasks.audit_events import audited
from tasks.automations import emit_backup_completed
from tasks.passwords import Encryption
from tasks.backup import (
    abandon_backup, commit_snapshot, plan_backup, publish_backup_report, scan_workspace, upload_packs,
)
from tasks.workflows import save_workflows


def keep_workflows(repo: str, options: dict[str, Any], summary: BackupSummary) -> None:
    """The snapshot is saved whatever happens here: a server that cannot be read is a warning."""
    try:
        summary["workflows"] = save_workflows(repo, options, summary["snapshot_id"])  # type: ignore[typeddict-unknown-key]
    except Exception as exc:  # noqa: BLE001 - any failure of the export leaves the backup as it is
        summary["warnings"].append(f"the workflows export was not kept with the snapshot: {exc}")


@plain_flow(name="backup", flow_run_name="backup {source}", validate_parameters=False)  # see plain_flow
def backup_flow(source: str, repo: str, type: SnapshotType | None = None, excludes: list[str] | None = None,
                tags: list[str] | None = None, description: str = "", options: dict[str, Any] | None = None,
                compression_level: int | None = None, connections: int | None = None, pack_size_mib: int = 16,
                include_versions: bool | None = None, include_workflows: bool | None = None,
                encryption: Encryption = "on") -> BackupSummary:
    """Back up ``source`` into the repository at ``repo`` (created if the location is empty:
    encrypted, unless ``encryption`` is "none"; its password comes from the sources in
    tasks/passwords.py, never from a parameter).

    A snapshot that lacks something that could not be read still completes the run, in a
    Completed state named "Incomplete"; its summary, report and audit event name what is
    missing under ``incomplete`` (the CLI then exits with IncompleteSnapshot's code).

    ``include_versions`` / ``include_workflows`` (None: the config's keys) mark the snapshot as
    carrying the repository's version history, and keep an export of backupflow's Prefect
    deployments and automations with it (``backupflow workflows restore`` puts them back)."""
    settings = load_settings()
    refuse_when_disabled(settings, "back up")
    started = time.monotonic()
    options = options or {}
    tags = carried_tags(tags or [], settings.backup, include_workflows)
    if compression_level is None:  # a zstd level; the config's 0-9 scale maps onto it
        compression_level = zstd_level(settings.backup.compression_level)
    versions = settings.backup.include_versions if include_versions is None else include_versions
    with audited("backup", "started", target=source, repo=repo,
                 details={"type": type, "tags": tags or []}, options=options) as trail:
        for attempt in (1, 2):
            plan = plan_backup(repo, options, source, type, excludes or [], tags, description,
                               compression_level, pack_size_mib, versions, encryption)
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
        if CARRIES_WORKFLOWS in tags:
            keep_workflows(repo, options, summary)
        emit_backup_completed(plan.host, summary["source"], summary["snapshot_id"], summary["type"])
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
