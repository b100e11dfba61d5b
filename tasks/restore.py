"""Restore tasks: plan (what would change), fetch (manifest and index, all chunks present),
write (download packs, check every chunk hash, write files)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS


@task(name="plan_restore", **TASK_OPTIONS)
def plan_restore(repo: str, options: dict[str, Any], snapshot: str, target: str,
                 include: list[str] | None) -> dict[str, Any]:
    plan = open_repo(repo, options).plan_restore(snapshot, target, include)
    return plan.to_dict()


@task(name="fetch_snapshot", **TASK_OPTIONS)
def fetch_snapshot(repo: str, options: dict[str, Any], snapshot_id: str, include: list[str] | None) -> dict[str, Any]:
    """Load the manifest and index and find every chunk the restore needs, before a single file
    is touched; ``missing`` names the files with a chunk the repository no longer holds (the
    restore leaves those out and restores the rest)."""
    r = open_repo(repo, options)
    needed, missing = r.check_restorable(snapshot_id, include)
    return {"snapshot_id": snapshot_id, "chunks": needed, "missing": missing}


@task(name="write_files", **TASK_OPTIONS)
def write_files(repo: str, options: dict[str, Any], snapshot_id: str, target: str, include: list[str] | None,
                total_files: int = 0, total_bytes: int = 0, connections: int | None = None) -> dict[str, Any]:
    progress = reporter_for("restore", total_files, total_bytes)
    return open_repo(repo, options).restore(snapshot_id, target, include, progress, connections).to_dict()
