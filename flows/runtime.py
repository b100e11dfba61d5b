"""How flows run here: the flow decorator, Prefect settings for in-process runs, and the
current run's id.

In-process CLI runs turn the flow-run heartbeat off: each heartbeat thread makes a sync run
wait about a second at exit, and crash detection by heartbeat only matters for runs on
workers, which keep the default.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
from typing import Any

from prefect import Flow
from prefect.context import SettingsContext, get_settings_context
from prefect.runtime import flow_run

from storage.backend import refuse_option_credentials, refuse_url_credentials
from storage.snapshots import require_text
from tasks.repo_access import register_secret_options, split_secret_options


class PlainDataFlow(Flow):
    """A flow whose parameters are plain JSON data, as all of backupflow's are (so a run can be
    started from the UI, a deployment or Python): they are stored as they are. Prefect's own
    serializer imports FastAPI for its encoder on the first run in a process, 0.18 s of the
    CLI's orchestration budget; anything that is not plain data still goes through it.

    Called from Python, it first keeps credentials out of what the run records (its name,
    parameters, logs, audit events): a URL parameter carrying a credential is refused, and
    secret ``options`` are registered for the run's repository in this process instead of
    travelling as parameters (:mod:`tasks.repo_access`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(self.fn).bind_partial(*args, **{k: v for k, v in kwargs.items()
                                                                  if k not in ("return_state", "wait_for")})
        for name, value in bound.arguments.items():
            if isinstance(value, str):
                refuse_url_credentials(value, f"The {name} URL")
                # Prefect records parameters as UTF-8 text; a path with other bytes would end
                # in an encoding traceback when the run is created.
                require_text(value, f"The {name}", "give it as UTF-8 text")
        options = bound.arguments.get("options")
        if isinstance(options, dict) and isinstance(bound.arguments.get("repo"), str):
            refuse_option_credentials(options)
            plain, secret = split_secret_options(options)
            if secret:
                register_secret_options(bound.arguments["repo"], secret)
                bound.arguments["options"] = plain
                extra = {k: v for k, v in kwargs.items() if k in ("return_state", "wait_for")}
                return super().__call__(*bound.args, **bound.kwargs, **extra)
        return super().__call__(*args, **kwargs)

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
