"""What a run does when the Prefect server stops answering: the engine's work goes on.

Task runs are orchestrated on the client (their states travel as events), so the engine work
of a flow does not need the server; only what is *sent* to it does: artifacts, the flow run's
final state, a pause for approval. :func:`is_server_failure` tells such a failure from an
engine error, and :func:`publish` sends a report without letting a lost server fail the
operation whose report it is.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import httpx
from prefect.exceptions import PrefectHTTPStatusError

from storage.errors import BackupError

log = logging.getLogger("backupflow.prefect")
_LOST: list[str] = []  # what this process could not send, in order


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_server_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) is the Prefect API not answering, not an engine error."""
    for e in _chain(exc):
        if isinstance(e, BackupError):
            return False
        if isinstance(e, httpx.TransportError):
            return True
        if isinstance(e, PrefectHTTPStatusError) and e.response.status_code >= 500:
            return True
        if isinstance(e, RuntimeError) and str(e).startswith("Failed to reach API"):
            return True
    return False


def publish(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` (an artifact upload); a lost server is remembered, not raised."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        if not is_server_failure(exc):
            raise
        _LOST.append(what)
        log.warning("the Prefect server did not answer; the %s was not published (%s)", what, type(exc).__name__)


def lost() -> list[str]:
    return list(_LOST)
