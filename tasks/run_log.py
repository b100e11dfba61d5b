"""backupflow's own lines in a run's log, as the Prefect UI shows it, however the run started.

The CLI quiets Prefect (``PREFECT_LOGGING_LEVEL=WARNING``: its "Beginning flow run" and
"Finished in state" lines would cost API calls and say nothing the command does not), and that
level also silences every run logger, so CLI runs showed "This run didn't generate logs".
backupflow's lines therefore go through a logger of their own, ``backupflow.run``, at INFO
whatever Prefect's level, straight to Prefect's API log handler: never to the terminal (the CLI
prints its own outcome), always to the run's log in the UI, from the CLI and workers alike.

INFO says what each stage did; WARNING names every file skipped or changed while read.
"""

from __future__ import annotations

import logging
from typing import Iterable

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

MAX_LINES = 500  # per call of warn_each: the rest is counted in one line, the report lists them all


class _RunLogHandler(APILogHandler):
    """Prefect's API log handler, for records made inside a flow or task run only."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


log = logging.getLogger("backupflow.run")
log.setLevel(logging.INFO)
log.propagate = False
if not any(isinstance(h, _RunLogHandler) for h in log.handlers):
    log.addHandler(_RunLogHandler())


def info(message: str, *args: object) -> None:
    log.info(message, *args)


def warn_each(lines: Iterable[str], what: str) -> None:
    """One WARNING line per item; past MAX_LINES, one line saying how many more ``what``."""
    count = 0
    for line in lines:
        count += 1
        if count <= MAX_LINES:
            log.warning("%s", line)
    if count > MAX_LINES:
        log.warning("... and %d more %s (see the run's report)", count - MAX_LINES, what)
