"""Mark Crashed the runs whose backupflow process died without reporting an end.

A CLI killed with SIGKILL (or a machine that lost power) leaves its flow run Running, or Paused
while it waited for approval, for good: nothing else will ever end it. Every flow run that
backupflow starts in a process of its own carries that process's host and pid (with the pid's
start time, so a reused pid is not mistaken for it) as tags (flows.runtime.process_tags). Each
backupflow command that runs a flow first looks for runs of this host in Running, Pending or
Paused whose process is gone and sets them Crashed. Runs on workers have no such tags; the
Prefect automation in the README ("Runs whose process died") covers them by heartbeat.
"""

from __future__ import annotations

import socket

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from flows.runtime import HOST_TAG, PROCESS_TAG, process_start

OPEN_STATES = [StateType.RUNNING, StateType.PENDING, StateType.PAUSED]


def _dead_process(tags: list[str]) -> str | None:
    """'pid N' when the run's recorded process is gone, else None."""
    for tag in tags:
        if tag.startswith(PROCESS_TAG):
            pid, _, started = tag[len(PROCESS_TAG):].partition(":")
            if not pid.isdigit():
                return None
            now = process_start(int(pid))
            return None if now is not None and (started in ("0", now)) else f"pid {pid}"
    return None


def mark_crashed_runs(limit: int = 200) -> list[str]:
    """Set Crashed every open run of this host whose backupflow process is gone; their ids."""
    host = socket.gethostname()
    state_filter = FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_STATES))
    runs_filter = FlowRunFilter(state=state_filter, tags=FlowRunFilterTags(all_=[HOST_TAG + host]))
    marked = []
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=runs_filter, limit=limit):
            gone = _dead_process(run.tags or [])
            if gone is None:
                continue
            state = Crashed(message=f"The backupflow process that ran this ({gone} on {host}) ended without "
                                    "reporting how the run ended; a backup it ran made no snapshot unless one is "
                                    "listed by `backupflow snapshots`.")
            client.set_flow_run_state(run.id, state, force=True)
            marked.append(str(run.id))
    return marked
