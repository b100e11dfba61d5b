"""Deleting tasks: plan a forget, delete snapshot manifests, prune unneeded packs.

Destructive tasks never retry blindly. These retry only transient storage
errors (the one retry policy, tasks/retry.py), and a retry is safe because each step is
idempotent: deleting an object that is already gone counts as done (NotFound is ignored),
``forget`` re-checks its plan against the repository before deleting anything, and ``prune``
recomputes what is unneeded under a fresh prune lease on every attempt.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage import ForgetPlan, Repository
from storage.errors import ChainGone, Locked
from tasks.coordination import exclusive_slot
from tasks import run_log
from tasks.prefect_api import publish
from tasks.repo_access import open_repo
from tasks.reports import publish_history
from tasks.retry import TASK_OPTIONS


@task(name="plan_forget", **TASK_OPTIONS)
def plan_forget(repo: str, options: dict[str, Any], snapshots: list[str], prune: bool, chain: bool) -> dict[str, Any]:
    return open_repo(repo, options).plan_forget(snapshots, prune, chain).to_dict()


@task(name="forget_snapshots", **TASK_OPTIONS)
def forget_snapshots(repo: str, options: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    done = open_repo(repo, options).forget(ForgetPlan(**plan)).to_dict()
    run_log.info("forgot %d snapshot(s): %s", len(done["forgotten"]), ", ".join(s[:8] for s in done["forgotten"]))
    publish_history(repo, options)  # every forget, whichever flow asked for it (forget, archive, cleanup)
    return done


WAIT_POLL_SECONDS = 5.0


@task(name="prune_packs", **TASK_OPTIONS)
def prune_packs(repo: str, options: dict[str, Any], dry_run: bool = False, wait_seconds: float = 0.0) -> dict[str, Any]:
    r = open_repo(repo, options)
    if dry_run:
        return r.prune(dry_run=True).to_dict()
    with exclusive_slot(r.config.id):
        report = _prune_when_free(r, wait_seconds)
    run_log.info("pruned %d pack(s), %d bytes freed", report["packs_deleted"], report["bytes_freed"])
    return report


def _prune_when_free(r: Repository, wait_seconds: float) -> dict[str, Any]:
    """Prune; while backups or readers hold live leases, try again every few seconds for up to
    ``wait_seconds`` (a scheduled prune on a fleet waits for the backups running beside it
    rather than failing). Between attempts it holds no lease, so backups starting meanwhile
    go ahead; it holds the Prefect slot throughout, so a second prune waits behind it."""
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    while True:
        try:
            return r.prune().to_dict()
        except ChainGone:
            raise
        except Locked as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            run_log.info("prune waits (up to %d s more): %s", left, exc.message)
            time.sleep(min(WAIT_POLL_SECONDS, left))


@task(name="publish_cleanup_report", cache_policy=NO_CACHE)
def publish_cleanup_report(result: dict[str, Any], repo_display: str, repo: str | None = None,
                           options: dict[str, Any] | None = None) -> None:
    """The run's own report (the history was published by forget_snapshots)."""
    lines = [f"## Cleanup of {repo_display}", ""]
    forgotten = result.get("forgotten") or []
    if forgotten:
        lines.append(f"- snapshots forgotten ({len(forgotten)}): {', '.join(s[:8] for s in forgotten)}")
    pruned = result.get("prune")
    if pruned:
        lines.append(f"- packs deleted: {pruned['packs_deleted']}, bytes freed: {pruned['bytes_freed']}, "
                     f"packs of running backups kept: {pruned['packs_kept_live']}")
    publish("cleanup report", create_markdown_artifact, key="cleanup-report", markdown="\n".join(lines) + "\n")
