"""Backup tasks: plan the run, scan the workspace, upload packs, commit the snapshot, report."""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage import BackupPlan, BackupSummary, StoreResult, summarize
from storage.snapshots import ScanResult
from storage.sizes import human_bytes
from tasks import run_log
from tasks.passwords import Encryption
from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.reports import publish_history, publish_run_report, publish_stats
from tasks.retry import TASK_OPTIONS


@task(name="plan_backup", **TASK_OPTIONS)
def plan_backup(repo: str, options: dict[str, Any], source: str, type: str | None, excludes: list[str],
                tags: list[str], description: str, compression_level: int = 3, pack_size_mib: int = 16,
                include_versions: bool = False, encryption: Encryption = "on") -> BackupPlan:
    r = open_repo(repo, options, create=True, encryption=encryption, compression_level=compression_level,
                  pack_size_mib=pack_size_mib)
    plan = r.plan_backup(source, type, excludes, r.tags_with_versions(tags) if include_versions else tags, description)
    after = f" after {plan.parent[:8]}" if plan.parent else ""
    run_log.info("planned a backup of %s: %s%s", plan.source, plan.type, after)
    return plan


@task(name="scan_workspace", **TASK_OPTIONS)
def scan_workspace(repo: str, options: dict[str, Any], plan: BackupPlan) -> ScanResult:
    scan = open_repo(repo, options).scan(plan)
    files = sum(1 for e in scan.entries if e["type"] == "file")
    run_log.info("scanned %s: %d files, %d to read (%s), %d unchanged since the last backup", plan.source, files,
                 len(scan.to_read), human_bytes(scan.bytes_to_read), files - len(scan.to_read))
    return scan


@task(name="upload_packs", **TASK_OPTIONS)
def upload_packs(repo: str, options: dict[str, Any], plan: BackupPlan, scan: ScanResult,
                 connections: int | None = None) -> StoreResult:
    """Chunk, compress and upload as one stage: packs stream to storage as they fill, so
    splitting this into separate tasks would mean staging every pack on local disk first.
    Idempotent: a retry finds the packs the failed attempt indexed and does not send them again."""
    progress = reporter_for("backup", len(scan.to_read), scan.bytes_to_read)
    stored = open_repo(repo, options).store(plan, scan, progress, connections)
    s = stored.stats
    run_log.info("read %d files (%s); stored %d new chunks, %s, in %d new packs", s["files_read"],
                 human_bytes(s["bytes_read"]), s["chunks_added"], human_bytes(s["bytes_added"]), s["packs_added"])
    run_log.warn_each(stored.warnings, "warnings")
    run_log.warn_each((f"not backed up: {m['path']}: {m['reason']}" for m in stored.missing), "items not backed up")
    return stored


@task(name="commit_snapshot", **TASK_OPTIONS)
def commit_snapshot(repo: str, options: dict[str, Any], plan: BackupPlan, stored: StoreResult) -> BackupSummary:
    snap = open_repo(repo, options).commit(plan, stored)
    run_log.info("committed snapshot %s (%s, chain %s)", snap.id[:8], snap.type, snap.chain[:8])
    return summarize(snap, stored.warnings, stored.missing)


@task(name="abandon_backup", cache_policy=NO_CACHE)
def abandon_backup(repo: str, options: dict[str, Any], plan: BackupPlan) -> None:
    open_repo(repo, options).abandon(plan)


@task(name="publish_backup_report", cache_policy=NO_CACHE)
def publish_backup_report(summary: BackupSummary, repo_display: str, repo: str | None = None,
                          options: dict[str, Any] | None = None) -> None:
    """The run's own report, then (given ``repo``) the repository's history and statistics."""
    s = summary["stats"]
    row = {
        "snapshot": summary["short_id"], "type": summary["type"], "files": s["files"],
        "bytes read": human_bytes(s["bytes_read"]), "bytes added": human_bytes(s["bytes_added"]),
        "dedup ratio": s["dedup_ratio"], "compression ratio": s["compression_ratio"],
        "duration s": summary.get("duration_seconds"), "warnings": len(summary["warnings"]),
        "not backed up": len(summary["incomplete"]),
    }
    publish_run_report("backup report", "table", "backup-report", json.dumps([row]),
                       f"Backup of {summary['source']} into {repo_display}")
    if summary["warnings"]:
        lines = "\n".join(f"- {w}" for w in summary["warnings"][:200])
        missing = "\n".join(f"- `{m['path']}`: {m['reason']}" for m in summary["incomplete"][:200])
        head = f"## Incomplete snapshot: not backed up\n{missing}\n\n" if missing else ""
        publish_run_report("backup warnings", "markdown", "backup-warnings", f"{head}## Warnings\n{lines}\n")
    if repo is not None:
        publish_history(repo, options)
        publish_stats(repo, options, refresh=False)
