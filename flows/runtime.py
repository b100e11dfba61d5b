"""How flows run here: the flow decorator, Prefect settings for in-process runs, and the
current run's id.

In-process CLI runs turn the flow-run heartbeat off: each heartbeat thread makes a sync run
wait about a second at exit, and crash detection by heartbeat only matters for runs on
workers, which keep the default.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import socket
from typing import Any

from prefect import Flow
from prefect.context import SettingsContext, TagsContext, get_settings_context
from prefect.runtime import flow_run

from storage.backend import refuse_option_credentials, refuse_url_credentials
from storage.errors import InvalidInput
from storage.snapshots import require_text
from tasks.repo_access import register_secret_options, run_scope, split_secret_options


class PlainDataFlow(Flow):
    """A flow whose parameters are plain JSON data, as all of backupflow's are (so a run can be
    started from the UI, a deployment or Python): they are stored as they are. Prefect's own
    serializer imports FastAPI for its encoder on the first run in a process, 0.18 s of the
    CLI's orchestration budget; anything that is not plain data still goes through it.

    Called from Python, it first keeps credentials out of what the run records (its name,
    parameters, logs, audit events): a URL parameter carrying a credential is refused, and
    secret ``options`` are registered for the run's repository in this process instead of
    travelling as parameters (:mod:`tasks.repo_access`). Its tasks share the repositories they
    open (:func:`tasks.repo_access.run_scope`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with run_scope():
            return self._call(*args, **kwargs)

    def _call(self, *args: Any, **kwargs: Any) -> Any:
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
    """``@prefect.flow(**options)`` for flows with plain-data parameters (:class:`PlainDataFlow`),
    whose body's outcome is kept for :func:`body_outcome`.

    Every flow here passes ``validate_parameters=False``: the engine checks each parameter
    itself and answers a mistake with one sentence and its documented exit code
    (storage/errors.py), where Prefect's validation would fail first with its own error for the
    same input. The annotations still give the run form its fields and dropdowns (a
    ``Literal`` becomes a choice): Prefect builds the form from the signature either way."""
    return lambda fn: PlainDataFlow(_recording(fn), **options)


class Outcome:
    """What the body of the last flow run in this process did, whatever the server heard of it:
    ``started``, then ``result`` or ``error``. The CLI reports it when the Prefect server stops
    answering and the flow call itself fails (flows.cli.server_loss)."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None


_OUTCOME = Outcome()


def body_outcome(reset: bool = False) -> Outcome:
    global _OUTCOME
    if reset:
        _OUTCOME = Outcome()
    return _OUTCOME


# Parameters that name a place: empty, they would mean the worker's current folder (a backup
# of whatever is there, a repository "Is a directory"), so a run refuses them at once.
PLACE_PARAMETERS = {"source": "BACKUPFLOW_SOURCE", "repo": "BACKUPFLOW_REPO", "target": None}


def refuse_empty_places(fn, args: tuple, kwargs: dict[str, Any]) -> None:
    given = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    for name, env in PLACE_PARAMETERS.items():
        value = given.get(name)
        if not isinstance(value, str):
            continue
        where = f" (prefect.yaml fills it from {env} where `prefect deploy` runs)" if env else ""
        if not value.strip():
            raise InvalidInput(f"The parameter '{name}' is empty; give the run or its deployment a {name}{where}.")
        if "{{" in value:  # prefect deploy keeps the placeholder of a variable that was not set
            raise InvalidInput(f"The parameter '{name}' is the unfilled placeholder {value}; give the run or its "
                               f"deployment a {name}{where}.")


def _recording(fn):
    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        refuse_empty_places(fn, args, kwargs)
        outcome = _OUTCOME
        outcome.started = True
        # The process tags belong to the flow run only: on a task run, a tag makes Prefect ask
        # the server for a tag concurrency slot, so every task would need the server.
        mine = {t for t in TagsContext.get().current_tags if t.startswith((HOST_TAG, PROCESS_TAG))}
        try:
            with TagsContext(current_tags=TagsContext.get().current_tags - mine):
                outcome.result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome.error = exc
            raise
        finally:
            outcome.finished = True
        return outcome.result
    return body


# Tags that say which process runs a flow run, so that a later backupflow process on the same
# host can tell a run whose process died from one still running (flows.crashed_runs). The
# process start time (from /proc) guards against a reused pid.
HOST_TAG = "backupflow-host:"
PROCESS_TAG = "backupflow-process:"


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def process_tags() -> list[str]:
    pid = os.getpid()
    return [HOST_TAG + socket.gethostname(), f"{PROCESS_TAG}{pid}:{process_start(pid) or 0}"]


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
