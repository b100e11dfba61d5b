"""The one retry policy for Prefect tasks: retry only what the engine calls transient.

Permanent, integrity and input errors fail at once; a retry would only hide them
(restic #1628 retried a missing file thousands of times).
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

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

# What every engine task passes to @task: retry transient failures only, and never cache (a
# task's result depends on the repository, not only on its parameters).
TASK_OPTIONS: dict[str, Any] = dict(retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
                                    retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
