"""Restore tasks: plan (what would change), fetch (manifest and index, all chunks present),
write (download packs, check every chunk hash, write files)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.retry import RETRIES, RETRY_DELAYS, retry_transient

_TASK = dict(retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)


@task(name="plan_restore", **_TASK)
def plan_restore(repo: str, options: dict[str, Any], snapshot: str, target: str, include: list[str] | None) -> dict[str, Any]:
    plan = open_repo(repo, options).plan_restore(snapshot, target, include)
    return plan.to_dict()


@task(name="fetch_snapshot", **_TASK)
def fetch_snapshot(repo: str, options: dict[str, Any], snapshot_id: str, include: list[str] | None) -> dict[str, Any]:
    """Load the manifest and index and find every chunk the restore needs, before a single file
    is touched; ``missing`` names the files with a chunk the repository no longer holds (the
    restore leaves those out and restores the rest)."""
    r = open_repo(repo, options)
    needed, missing = r.check_restorable(snapshot_id, include)
    return {"snapshot_id": snapshot_id, "chunks": needed, "missing": missing}


@task(name="write_files", **_TASK)
def write_files(repo: str, options: dict[str, Any], snapshot_id: str, target: str, include: list[str] | None,
                total_files: int = 0, total_bytes: int = 0, connections: int | None = None) -> dict[str, Any]:
    progress = reporter_for("restore", total_files, total_bytes)
    return open_repo(repo, options).restore(snapshot_id, target, include, progress, connections).to_dict()
