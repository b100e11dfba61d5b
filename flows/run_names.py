"""Flow run names that say what happened, set once the outcome is known.

A run starts under a name made from its parameters ("backup ~/work"); when the snapshot is
known the name becomes "backup full 1a2b3c4d of ~/work" or "restore 1a2b3c4d -> ~/restore",
so the UI's runs list reads like a backup tool's history. Renaming is one API call; a server
that does not answer keeps the first name and costs nothing else.
"""

from __future__ import annotations

import logging
import os

from prefect import get_client
from prefect.context import FlowRunContext

from tasks.prefect_api import is_server_failure
from tasks.reports import after_run

log = logging.getLogger("backupflow.prefect")


def home_short(path: str) -> str:
    """``path`` with the user's home folder written as ``~``."""
    home = os.path.expanduser("~").rstrip("/")
    if home and (path == home or path.startswith(home + "/")):
        return "~" + path[len(home):]
    return path


def rename_run(name: str, now: bool = False) -> None:
    """Give the current flow run ``name`` (nothing outside a run); from the CLI, once the
    command has answered (tasks.reports.after_run), unless ``now`` (a run about to wait for
    an approver, who should see what it restores)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    run_id = ctx.flow_run.id

    def send() -> None:
        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_name(run_id, name[:200])
        except Exception as exc:
            if not is_server_failure(exc):
                raise
            log.warning("the Prefect server did not answer; the run keeps its first name")
    send() if now else after_run(send)


def backup_name(kind: str, short_id: str, source: str) -> str:
    return f"backup {kind} {short_id} of {home_short(source)}"


def restore_name(snapshot_id: str, target: str) -> str:
    return f"restore {snapshot_id[:8]} -> {home_short(target)}"
