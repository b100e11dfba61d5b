"""Verify task: structure always, every byte with read_data; publishes a report artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.progress import reporter_for
from tasks.repo_access import open_repo
from tasks.retry import RETRIES, RETRY_DELAYS, retry_transient


@task(name="verify_repository", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def verify_repository(repo: str, options: dict[str, Any], read_data: bool) -> dict[str, Any]:
    r = open_repo(repo, options)
    progress = reporter_for("verify", len(r.index.pack_run), 0) if read_data else None
    return r.verify(read_data, progress).to_dict()


@task(name="publish_verify_report", cache_policy=NO_CACHE)
def publish_verify_report(report: dict[str, Any], repo_display: str) -> None:
    status = "OK" if report["ok"] else "DAMAGED"
    lines = [f"## Verify {repo_display}: {status}", "",
             f"snapshots {report['snapshots']}, packs {report['packs']}, chunks {report['chunks']}, "
             f"data read: {'yes' if report['read_data'] else 'no'}"]
    lines += [f"- {p}" for p in report["problems"][:200]]
    create_markdown_artifact(key="verify-report", markdown="\n".join(lines))
