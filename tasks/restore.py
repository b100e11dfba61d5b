"""Restore tasks: plan (what would change, before approval) and write (download packs, check
every chunk hash, write the files; files whose data is damaged or missing are named)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.sizes import human_bytes
from tasks import run_log
from tasks.reports import publish_run_report
from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS


@task(name="plan_restore", **TASK_OPTIONS)
def plan_restore(repo: str, options: dict[str, Any], snapshot: str, target: str,
                 include: list[str] | None) -> dict[str, Any]:
    plan = open_repo(repo, options).plan_restore(snapshot, target, include)
    run_log.info("planned the restore of %s into %s: %d files to create, %d to overwrite, %s", plan.snapshot[:8],
                 plan.target, len(plan.create), len(plan.overwrite), human_bytes(plan.bytes))
    return plan.to_dict()


@task(name="write_files", **TASK_OPTIONS)
def write_files(repo: str, options: dict[str, Any], snapshot_id: str, target: str, include: list[str] | None,
                total_files: int = 0, total_bytes: int = 0, connections: int | None = None) -> dict[str, Any]:
    progress = reporter_for("restore", total_files, total_bytes)
    result = open_repo(repo, options).restore(snapshot_id, target, include, progress, connections).to_dict()
    run_log.info("restored %d files (%s) of %s into %s", result.get("files", 0), human_bytes(result.get("bytes", 0)),
                 snapshot_id[:8], target)
    run_log.warn_each((f"not restored: {p}: {why}" for p, why in sorted((result.get("not_restored") or {}).items())),
                      "files not restored")
    return result


@task(name="publish_restore_report", cache_policy=NO_CACHE)
def publish_restore_report(result: dict[str, Any], snapshot_id: str, target: str, repo_display: str) -> None:
    left_out = result.get("not_restored") or {}
    lines = [f"## Restore of {snapshot_id[:8]} from {repo_display} into {target}", "",
             "| files | bytes | files overwritten | not restored |", "|---|---|---|---|",
             f"| {result.get('files', 0)} | {human_bytes(result.get('bytes', 0))} | {result.get('overwritten', 0)} "
             f"| {len(left_out)} |"]
    if left_out:
        lines += ["", "### Not restored", ""]
        lines += [f"- `{path}`: {why}" for path, why in sorted(left_out.items())[:200]]
    publish_run_report("restore report", "markdown", "restore-report", "\n".join(lines) + "\n",
                       f"Restore of {snapshot_id[:8]} into {target}")
