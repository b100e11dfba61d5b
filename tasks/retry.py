"""The one retry policy for Prefect tasks: retry only what the engine calls transient.

Permanent, integrity and input errors fail at once; a retry would only hide them
(restic #1628 retried a missing file thousands of times).
"""

from __future__ import annotations

from storage.errors import BackupError


def retry_transient(task, task_run, state) -> bool:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as raised:  # some states re-raise when read
        exc = raised
    if isinstance(exc, BackupError):
        return exc.transient
    return isinstance(exc, (ConnectionError, TimeoutError))


RETRIES = 3
RETRY_DELAYS = [2, 10, 30]
