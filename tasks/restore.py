"""Restore tasks: plan (what would change, before approval) and write (download packs, check
every chunk hash, write the files; files whose data is damaged or missing are named)."""

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


@task(name="write_files", **TASK_OPTIONS)
def write_files(repo: str, options: dict[str, Any], snapshot_id: str, target: str, include: list[str] | None,
                total_files: int = 0, total_bytes: int = 0, connections: int | None = None) -> dict[str, Any]:
    progress = reporter_for("restore", total_files, total_bytes)
    return open_repo(repo, options).restore(snapshot_id, target, include, progress, connections).to_dict()
