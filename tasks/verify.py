"""Verify task: structure always, every byte with read_data; publishes a report artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage.audit import open_audit_log
from storage.audit.records import recorded_snapshots
from storage.backend import display_url
from storage.errors import BackupError
from tasks import run_log
from tasks.prefect_api import publish
from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.reports import publish_stats
from tasks.retry import TASK_OPTIONS


@task(name="verify_repository", **TASK_OPTIONS)
def verify_repository(repo: str, options: dict[str, Any], read_data: bool) -> dict[str, Any]:
    r = open_repo(repo, options)
    progress = reporter_for("verify", len(r.index.pack_run), 0) if read_data else None
    report = r.verify(read_data, progress, expected=audited_snapshots(repo, r.config.created)).to_dict()
    run_log.info("checked %d snapshots, %d packs, %d chunks%s: %s", report["snapshots"], report["packs"],
                 report["chunks"], " (every byte read)" if read_data else "",
                 "no problems" if report["ok"] else f"{len(report['problems'])} problem(s)")
    run_log.warn_each(report["problems"], "problems")
    return report


def audited_snapshots(repo: str, created: str) -> dict[str, str]:
    """Snapshots of ``repo`` (created at ``created``) that the audit log says were made and not
    removed (empty when the log cannot be read: it is a second opinion, never a reason to fail)."""
    try:
        return recorded_snapshots(open_audit_log(), display_url(repo), created)
    except (BackupError, OSError, ValueError):
        return {}


def missing_recorded(repo: str, created: str, present: set[str]) -> list[str]:
    """One sentence for each snapshot the audit log records that the repository lacks."""
    return [f"snapshot {sid[:8]} ({what}) is recorded in the audit log but missing from the repository"
            for sid, what in sorted(audited_snapshots(repo, created).items()) if sid not in present]


@task(name="publish_verify_report", cache_policy=NO_CACHE)
def publish_verify_report(report: dict[str, Any], repo_display: str, repo: str | None = None,
                          options: dict[str, Any] | None = None) -> None:
    """The verify's own report, then (given ``repo``) the repository's statistics."""
    status = "OK" if report["ok"] else "DAMAGED"
    lines = [f"## Verify {repo_display}: {status}", "",
             f"snapshots {report['snapshots']}, packs {report['packs']}, chunks {report['chunks']}, "
             f"data read: {'yes' if report['read_data'] else 'no'}"]
    lines += [f"- {p}" for p in report["problems"][:200]]
    publish("verify report", create_markdown_artifact, key="verify-report", markdown="\n".join(lines))
    if repo is not None:
        publish_stats(repo, options, refresh=False)


@task(name="check_recorded_snapshots", cache_policy=NO_CACHE)
def check_recorded_snapshots(repo: str, options: dict[str, Any]) -> list[str]:
    """Warnings for snapshots the audit log knows and the repository lacks, and for snapshots
    whose manifest cannot be read (``restore latest`` would otherwise silently pick an older one)."""
    r = open_repo(repo, options)
    store = r.snapshots
    store.all()
    damaged = [f"snapshot {sid[:8]} was skipped: {why}" for sid, why in sorted(store.damaged.items())]
    return damaged + missing_recorded(repo, r.config.created, set(store.ids()))
