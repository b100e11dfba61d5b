"""The engine's outcome is the truth when the Prefect server goes away.

A flow run's work does not need the server once it runs (task states travel as events), but
the flow call still fails when it cannot report its end, after Prefect's client retries. Here
that failure is turned back into what the engine did (flows.runtime.body_outcome): a backup
that committed its snapshot is reported as saved, with one sentence about the server and the
exit code of the engine's result; an engine error keeps its own sentence and code. A server
that does not answer before the run is one sentence within seconds, and nothing is done.
Before each run, runs of this host whose process died are marked Crashed (flows.crashed_runs).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable

from prefect.context import SyncClientContext
from prefect.settings import get_current_settings

from flows.crashed_runs import mark_crashed_runs
from flows.runtime import body_outcome
from storage.errors import ServerUnreachable
from tasks.prefect_api import is_server_failure

LOST = False  # set once the server stopped answering in this process (flow_runner.fast_exit)


def server_url() -> str:
    return str(get_current_settings().api.url or os.environ.get("PREFECT_API_URL") or "Prefect's embedded server")


def _lost() -> None:
    global LOST
    LOST = True


def check_server(stack: contextlib.ExitStack | None = None) -> None:
    """Mark dead runs Crashed; ServerUnreachable in one sentence when the server does not answer.

    With ``stack``, first enter one Prefect client for the rest of the command (the sweep, the
    flow and task engines, the artifacts all use it): each client made anew loads the CA bundle
    (~35 ms) and opens its own connection. Entering it may ask the server its version."""
    try:
        if stack is not None:
            stack.enter_context(SyncClientContext.get_or_create())
        mark_crashed_runs()
    except Exception as exc:
        if not is_server_failure(exc):
            return  # the sweep is housekeeping: anything else must not stop the command
        _lost()
        raise ServerUnreachable(
            f"The Prefect server at {server_url()} (PREFECT_API_URL) does not answer; start it (`prefect server "
            "start`) or unset PREFECT_API_URL to let backupflow start a local one; nothing was done.") from None


def guard(kind: str, call: Callable[[], Any]) -> Any:
    """``call()`` (a flow run of ``kind``), reporting the engine's outcome if the server goes away."""
    with contextlib.ExitStack() as stack:
        check_server(stack)
        return _call(kind, call)


def _call(kind: str, call: Callable[[], Any]) -> Any:
    outcome = body_outcome(reset=True)
    try:
        return call()
    except Exception as exc:
        if not is_server_failure(exc):
            raise
        _lost()
        where = server_url()
        if not outcome.started:
            raise ServerUnreachable(f"The Prefect server at {where} stopped answering before the {kind} run started; "
                                    "nothing was done; run the command again once it answers.") from None
        if outcome.finished and outcome.error is None:
            sys.stderr.write(f"backupflow: the Prefect server at {where} stopped answering during this run; the "
                             f"{kind} itself completed (below), but the Prefect UI may not show how the run ended.\n")
            return outcome.result
        if outcome.error is not None and not is_server_failure(outcome.error):
            sys.stderr.write(f"backupflow: the Prefect server at {where} stopped answering during this run; "
                             f"the {kind} itself failed as follows.\n")
            raise outcome.error from None
        raise ServerUnreachable(f"The Prefect server at {where} stopped answering during the {kind} run, which needed "
                                "it to go on (an approval or a concurrency slot is held there); it stopped there and "
                                "changed nothing more; run the command again once the server answers.") from None
