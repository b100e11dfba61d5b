"""Run a flow from the CLI in this process: Prefect settings, secrets, progress bar, run link.

Imported only by the commands that change data, so read-only commands never load Prefect.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any, Callable

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from flows.approvals import get_guardian
from prefect import tags
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker

from flows.cli.app import EXIT_HOOKS
from flows.cli import password_prompt, server_loss
from flows.cli.context import with_secret_block
from flows.runtime import in_process_run, process_tags
from tasks import progress as task_progress
from tasks import reports
from tasks.repo_access import register_secret_options, split_secret_options


def _bar() -> tuple[Progress, Callable]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                   transient=True)
    ids: dict[str, Any] = {}

    def report(stage: str, done: int, total: int, nbytes: int, total_bytes: int) -> None:
        if stage not in ids:
            # Drawn from the first report on, not around the whole run: before it, an
            # approval prompt may be waiting for the person at this terminal.
            if not ids:
                bar.start()
            ids[stage] = bar.add_task(stage, total=total_bytes or None)
        bar.update(ids[stage], completed=nbytes, description=f"{stage} {done}/{total} files")

    return bar, report


def announce_wait(run_id: str, request: dict[str, Any], ui_url: str | None) -> None:
    """Tell the person at the terminal that the run waits, where to see it and how to answer."""
    risk = request["risk"]
    lines = [f"backupflow: {risk['level'].upper()} risk: {risk['reason']}.",
             f"  Waiting for approval of flow run {run_id}",
             f"  approve: backupflow approve {run_id} --reason '...'",
             f"  reject:  backupflow reject {run_id} --reason '...'"]
    if ui_url:
        lines.insert(2, f"  Prefect UI: {ui_url}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def fast_exit(code) -> None:
    """End a CLI process that talked to a Prefect server without Prefect's slow teardown.

    Interpreter shutdown with Prefect's service threads costs about half a second, a third of
    the orchestration budget per run. Events and logs are drained first, so nothing the UI
    shows is lost. Not used on the embedded server, whose own shutdown must run."""
    if not os.environ.get("PREFECT_API_URL"):
        return
    # A server that stopped answering gets a second, not twenty: the outcome is already reported.
    wait = 1 if server_loss.LOST else 10
    try:
        EventsWorker.drain_all(timeout=wait)
        APILogWorker.drain_all(timeout=wait)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def publish_reports(code) -> None:
    """The reports deferred during the run (tasks.reports), sent after the command answered."""
    if not server_loss.LOST:
        reports.run_deferred()


EXIT_HOOKS.append(publish_reports)
EXIT_HOOKS.append(fast_exit)
# Prefect's log shipper writes "--- Error logging to API ---" for every batch it cannot send
# while this switch is on; a lost server is reported once, by flows.cli.server_loss.
logging.raiseExceptions = False


def run_flow(flow_fn, repo: str, options: dict[str, Any], show_progress: bool, **params) -> Any:
    """Run the flow here; the engine's outcome is reported even if the Prefect server goes away."""
    return server_loss.guard(flow_fn.name, lambda: _run_flow(flow_fn, repo, options, show_progress, **params))


def _run_flow(flow_fn, repo: str, options: dict[str, Any], show_progress: bool, **params) -> Any:
    # The ~130,000 objects Prefect's import leaves are never garbage: keep the collector from
    # walking them again during the run (it spent 0.1 s of a first backup doing so).
    gc.freeze()
    # The password prompt, if one is needed, comes before the run exists: a task never waits
    # for a person to type (it may not run where they are).
    creating = flow_fn.name == "backup" and params.get("encryption", "on") != "none"
    password_prompt.prompt_if_needed(repo, with_secret_block(options), creating)
    get_guardian().set_waiting_notifier(announce_wait)
    plain, secret = split_secret_options(options)
    register_secret_options(repo, secret)
    if not os.environ.get("PREFECT_API_URL"):
        sys.stderr.write("backupflow: no PREFECT_API_URL set; running on Prefect's embedded server "
                         "(runs are kept in ~/.prefect; see them with `prefect server start`).\n")
    use_bar = show_progress and sys.stdout.isatty()
    reports.defer_reports(True)
    with in_process_run(), tags(*process_tags()):
        if not use_bar:
            return flow_fn(repo=repo, options=plain, **params)
        bar, report = _bar()
        task_progress.set_reporter(report)
        try:
            return flow_fn(repo=repo, options=plain, **params)
        finally:
            task_progress.set_reporter(None)
            bar.stop()
