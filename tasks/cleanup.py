"""Cleanup tasks: the retention policy in force, its plan for a repository, and its report.

Deleting and pruning reuse the forget tasks (tasks/forget.py): a cleanup is a forget whose
snapshots a policy chose, so it carries the same re-check before deleting and the same
exclusive prune slot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage import Candidate, RetentionPolicy, apply_policy
from storage.archive import archives_in, remove_from
from storage.backend import display_url
from storage.config import Settings
from storage.errors import InvalidInput, NotFound
from storage.sizes import human_bytes
from tasks.archive import open_destination
from tasks.prefect_api import publish
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS


def configured_policy(settings: Settings, **rules: Any) -> RetentionPolicy:
    """The policy of the flags given (``keep_*``) over ``[backup]`` retention_days and
    keep_minimum_count; a rule passed as None takes the configured value. Checked: a policy a
    user must fix raises InvalidInput."""
    backup = settings.backup
    days = rules.pop("retention_days", None)
    minimum = rules.pop("keep_minimum_count", None)
    policy = RetentionPolicy(
        last=rules.get("keep_last") or 0, hourly=rules.get("keep_hourly") or 0, daily=rules.get("keep_daily") or 0,
        weekly=rules.get("keep_weekly") or 0, monthly=rules.get("keep_monthly") or 0,
        yearly=rules.get("keep_yearly") or 0, within=rules.get("keep_within") or None,
        tags=list(rules.get("keep_tags") or []),
        retention_days=days if days is not None else backup.retention_days,
        minimum=minimum if minimum is not None else backup.keep_minimum_count)
    policy.check()
    return policy


def _when(now: str | None) -> datetime | None:
    if not now:
        return None
    try:
        return datetime.fromisoformat(now)
    except ValueError:
        raise InvalidInput(f"now={now!r} is not an ISO 8601 time such as 2026-12-01T12:00:00+00:00.") from None


@task(name="plan_cleanup", **TASK_OPTIONS)
def plan_cleanup(repo: str, options: dict[str, Any], policy: dict[str, Any], now: str | None = None) -> dict[str, Any]:
    return open_repo(repo, options).plan_cleanup(RetentionPolicy(**policy), _when(now)).to_dict()


@task(name="plan_archive_cleanup", **TASK_OPTIONS)
def plan_archive_cleanup(dest: str, dest_options: dict[str, Any], policy: dict[str, Any],
                         kept_sources: list[list[str]], now: str | None = None) -> dict[str, Any]:
    """The policy over the archives at ``dest`` (each self-contained: nothing needs another),
    by the time of the snapshot each one holds. ``kept_sources``: the (host, source) pairs that
    keep a snapshot in the repository; a source left with neither is ``sources_emptied``."""
    backend = open_destination(dest, dest_options)
    try:
        metas, damaged = archives_in(backend)
    except NotFound:
        metas, damaged = [], {}  # no archive was ever written there
    finally:
        backend.close()
    decisions = apply_policy([Candidate(m.id, m.time, m.host, m.source, tuple(m.tags)) for m in metas],
                             RetentionPolicy(**policy), _when(now))
    size = {m.id: m.bytes for m in metas}
    remove = [d.id for d in decisions if not d.keep]
    left = {(d.host, d.source) for d in decisions if d.keep} | {tuple(k) for k in kept_sources}
    return {"destination": display_url(dest), "damaged": sorted(damaged), "remove": remove,
            "decisions": [{**d.to_dict(), "short_id": d.id[:8], "type": "archive"} for d in decisions],
            "bytes_freed": sum(size[i] for i in remove), "removed": [],
            "sources_emptied": sorted({d.source for d in decisions if not d.keep and (d.host, d.source) not in left})}


@task(name="remove_archives", **TASK_OPTIONS)
def remove_archives(dest: str, dest_options: dict[str, Any], ids: list[str]) -> list[str]:
    """Delete these archives (data first, metadata last); one already gone counts as removed,
    so a rerun after a kill completes the work."""
    backend = open_destination(dest, dest_options)
    try:
        for aid in ids:
            remove_from(backend, aid)
    finally:
        backend.close()
    return list(ids)


def retention_table(decisions: list[dict[str, Any]]) -> str:
    """Markdown: one row per snapshot, newest first per source, with keep/remove and why."""
    lines = ["| snapshot | type | time | host | source | decision | reason |", "|---|---|---|---|---|---|---|"]
    for d in decisions:
        lines.append(f"| {d['short_id']} | {d.get('type', '')} | {d['time'][:19]} | {d['host']} | {d['source']} | "
                     f"{'keep' if d['keep'] else 'remove'} | {'; '.join(d['reasons'])} |")
    return "\n".join(lines)


@task(name="publish_retention_report", cache_policy=NO_CACHE)
def publish_retention_report(result: dict[str, Any], repo_display: str) -> None:
    done = "would remove" if result["dry_run"] else "removed"
    gone = result["remove"] if result["dry_run"] else result["forgotten"]
    lines = [f"## Retention of {repo_display}", "", f"Policy: {result['policy_text']}", "",
             f"{done} {len(gone)} snapshot(s); a prune frees {human_bytes(result['bytes_freed'])}", "",
             retention_table(result["decisions"])]
    publish("retention report", create_markdown_artifact, key="retention-report", markdown="\n".join(lines) + "\n")
