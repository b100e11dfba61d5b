"""Repair tasks: rebuild the index from pack headers; plan and carry out a snapshot repair.

Retried only on transient storage errors (tasks/retry.py). Each step is safe to repeat:
``repair_index`` writes hash-named index objects (the same entries give the same name) and
ignores objects already gone; ``repair_snapshots`` skips manifests already replaced or removed.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from storage import SnapshotRepairPlan
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS


@task(name="repair_index", **TASK_OPTIONS)
def repair_index(repo: str, options: dict[str, Any]) -> dict[str, Any]:
    return open_repo(repo, options).repair_index().to_dict()


@task(name="plan_repair_snapshots", **TASK_OPTIONS)
def plan_repair_snapshots(repo: str, options: dict[str, Any], read_data: bool) -> dict[str, Any]:
    return open_repo(repo, options).plan_repair_snapshots(read_data).to_dict()


@task(name="repair_snapshots", **TASK_OPTIONS)
def repair_snapshots(repo: str, options: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    fields = {k: plan[k] for k in ("rewrite", "remove", "remaining", "read_data")}
    return open_repo(repo, options).repair_snapshots(SnapshotRepairPlan(**fields))
