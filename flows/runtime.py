"""How flows run here: the flow decorator, Prefect settings for in-process runs, and the
current run's id.

In-process CLI runs turn the flow-run heartbeat off: each heartbeat thread makes a sync run
wait about a second at exit, and crash detection by heartbeat only matters for runs on
workers, which keep the default.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from prefect import Flow
from prefect.context import SettingsContext, get_settings_context
from prefect.runtime import flow_run


class PlainDataFlow(Flow):
    """A flow whose parameters are plain JSON data, as all of backupflow's are (so a run can be
    started from the UI, a deployment or Python): they are stored as they are. Prefect's own
    serializer imports FastAPI for its encoder on the first run in a process, 0.18 s of the
    CLI's orchestration budget; anything that is not plain data still goes through it."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(parameters)
        except (TypeError, ValueError):
            return super().serialize_parameters(parameters)
        return dict(parameters)


def plain_flow(**options: Any):
    """``@prefect.flow(**options)`` for flows with plain-data parameters (:class:`PlainDataFlow`)."""
    return lambda fn: PlainDataFlow(fn, **options)


@contextlib.contextmanager
def in_process_run():
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A copy of the current settings with one field changed. Prefect's temporary_settings()
    # would re-read every settings source (environment, profile, .env), 50-90 ms per CLI run.
    current = get_settings_context()
    settings = current.settings
    quiet = settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    with SettingsContext(profile=current.profile, settings=quiet):
        yield


def current_flow_run_id() -> str | None:
    rid = flow_run.get_id()
    return str(rid) if rid else None
