"""Audit events from flows: the operation's own trail (started/requested, completed, failed).

Plain functions, not Prefect tasks: an audit line is a few hundred bytes and must be written
even when a task fails, so it carries no task-run overhead or retry. Each event records the
current flow-run id. When ``[audit] mirror_to_repository`` is on, events are mirrored into
the operation's repository (``audit/`` objects) with its non-secret options.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from prefect.runtime import flow_run

from storage.audit import current_user, open_audit_log
from storage.backend import display_url
from storage.config import load_settings
from storage.errors import ApprovalRejected


def record(event_type: str, *, target: str | None = None, user: str | None = None,
           details: dict[str, Any] | None = None, outcome: str | None = None,
           repo: str | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    run_id = flow_run.get_id()
    log = open_audit_log(load_settings(), repository=repo, options=options)
    return log.log_event(event_type, user=user, target=target, details=details, outcome=outcome,
                         flow_run_id=str(run_id) if run_id else None)


class Trail:
    """What an operation adds to its closing event (``trail.details.update(...)``)."""

    def __init__(self) -> None:
        self.details: dict[str, Any] = {}


@contextlib.contextmanager
def audited(kind: str, first: str, *, target: str, repo: str, user: str | None = None,
            details: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> Iterator[Trail]:
    """``<kind>.<first>`` now, then ``<kind>.completed`` or ``<kind>.failed``.

    A rejected or timed-out approval is already on record as ``<kind>.rejected`` (written by the
    approval step), so it is not logged again as a failure."""
    user = user or current_user()
    base = {"repo": display_url(repo), **(details or {})}
    common = dict(target=target, user=user, repo=repo, options=options)
    record(f"{kind}.{first}", details=base, outcome="pending", **common)
    trail = Trail()
    try:
        yield trail
    except ApprovalRejected:
        raise
    except BaseException as exc:
        record(f"{kind}.failed", details={**base, **trail.details, "error": f"{type(exc).__name__}: {exc}"},
               outcome="failed", **common)
        raise
    record(f"{kind}.completed", details={**base, **trail.details}, outcome="success", **common)
