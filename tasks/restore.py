"""Restore tasks: plan (what would change), fetch (manifest and index, all chunks present),
write (download packs, check every chunk hash, write files)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.errors import IntegrityError
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
    """Load the manifest and index and make sure every chunk the restore needs is stored,
    before a single file is touched."""
    r = open_repo(repo, options)
    snap = r.snapshot(snapshot_id)
    wanted = [i.strip("/") for i in include or []]
    missing = 0
    needed = 0
    for e in snap.tree:
        if wanted and not any(e["path"] == w or e["path"].startswith(w + "/") for w in wanted):
            continue
        for cid in e.get("chunks", ()):
            needed += 1
            if cid not in r.index:
                missing += 1
    if missing:
        raise IntegrityError(f"Snapshot {snap.id[:8]} needs {missing} chunk(s) the repository does not hold; run `backupflow verify`.")
    return {"snapshot_id": snap.id, "chunks": needed}


@task(name="write_files", **_TASK)
def write_files(repo: str, options: dict[str, Any], snapshot_id: str, target: str, include: list[str] | None,
                total_files: int = 0, total_bytes: int = 0) -> dict[str, Any]:
    progress = reporter_for("restore", total_files, total_bytes)
    return open_repo(repo, options).restore(snapshot_id, target, include, progress)
