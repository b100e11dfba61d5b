"""How flows run here: Prefect settings for in-process runs, and the current run's id.

In-process CLI runs turn the flow-run heartbeat off: each heartbeat thread makes a sync run
wait about a second at exit, and crash detection by heartbeat only matters for runs on
workers, which keep the default.
"""

from __future__ import annotations

import contextlib
import os

from prefect.runtime import flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextlib.contextmanager
def in_process_run():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def current_flow_run_id() -> str | None:
    rid = flow_run.get_id()
    return str(rid) if rid else None
