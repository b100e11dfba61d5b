"""Audit events from flows: the operation's own trail (started/requested, completed, failed).

Plain functions, not Prefect tasks: an audit line is a few hundred bytes and must be written
even when a task fails, so it carries no task-run overhead or retry. Each event records the
current flow-run id. When ``[audit] mirror_to_repository`` is on, events are mirrored into
the operation's repository (``audit/`` objects) with its non-secret options.

Importing this module also anchors every audit event written in this process in the Prefect
server: :func:`emit_anchor` sends its id, time and hash as a Prefect event
(``backupflow.audit.appended`` on resource ``backupflow.audit-log.<log id>``), which the
server stores with its own timestamp; :func:`prefect_anchors` reads them back for
``backupflow audit --verify``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import httpx
from prefect import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import get_current_settings
from prefect.events import emit_event
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.runtime import flow_run

from storage.audit import ANCHOR_HOOKS, Anchor, current_user, open_audit_log
from storage.backend import display_url
from storage.config import load_settings
from storage.crypto import PLAIN, Sealer
from storage.errors import ApprovalRejected, BackupError, InvalidConfig
from tasks.prefect_api import is_server_failure
from tasks.repo_access import full_options, open_repo


ANCHOR_EVENT = "backupflow.audit.appended"
ANCHOR_RESOURCE = "backupflow.audit-log."


def emit_anchor(event: dict[str, Any]) -> None:
    """Send the event's hash to the Prefect server (a no-op where no server is configured)."""
    if not get_current_settings().api.url:
        return  # emit_event would load Prefect's whole server for an ephemeral one (a minute)
    emit_event(event=ANCHOR_EVENT,
               resource={"prefect.resource.id": f"{ANCHOR_RESOURCE}{event.get('log')}",
                         "prefect.resource.name": f"backupflow audit log on {event.get('host')}"},
               payload={k: event.get(k) for k in ("id", "time", "type", "hash", "prev_hash")})


if emit_anchor not in ANCHOR_HOOKS:
    ANCHOR_HOOKS.append(emit_anchor)


def prefect_anchors(log: str) -> list[Anchor]:
    """Every anchor of the audit log ``log`` that the Prefect server still holds (it keeps
    events for PREFECT_SERVER_EVENTS_RETENTION_PERIOD)."""
    now = datetime.now(timezone.utc)
    flt = EventFilter(event=EventNameFilter(name=[ANCHOR_EVENT]),
                      resource=EventResourceFilter(id=[f"{ANCHOR_RESOURCE}{log}"]),
                      occurred=EventOccurredFilter(since=now - timedelta(days=3650), until=now + timedelta(days=1)))
    out: list[Anchor] = []
    try:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=flt, limit=50)  # the server's largest page
            while True:
                out += [Anchor(str(e.payload.get("id")), str(e.payload.get("time")), str(e.payload.get("hash")),
                               "the Prefect server") for e in page.events]
                if not page.next_page:
                    return out
                page = client.read_events_page(str(page.next_page))
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        raise InvalidConfig(f"Cannot read the audit anchors from the Prefect server at "
                            f"{get_current_settings().api.url} ({type(exc).__name__}); start it or fix "
                            "PREFECT_API_URL.") from None


def record(event_type: str, *, target: str | None = None, user: str | None = None,
           details: dict[str, Any] | None = None, outcome: str | None = None,
           repo: str | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    run_id = flow_run.get_id()
    settings = load_settings()
    sealer = _sealer_of(repo, options) if repo and settings.audit.mirror_to_repository else PLAIN
    log = open_audit_log(settings, repository=repo, options=full_options(repo, options) if repo else options,
                         sealer=sealer)
    return log.log_event(event_type, user=user, target=target, details=details, outcome=outcome,
                         flow_run_id=str(run_id) if run_id else None)


def _sealer_of(repo: str, options: dict[str, Any] | None) -> Sealer:
    """The repository's sealer, so the events mirrored into an encrypted repository are sealed
    like everything else in it (without it the mirror leaves such a repository alone). Opened
    through the run's repository cache: the tasks that follow reuse it, so this costs no second
    key derivation. A repository that does not exist yet, or that cannot be opened (its own
    task reports why), gets the plain sealer."""
    try:
        return open_repo(repo, options, refresh=False).sealer
    except BackupError:
        return PLAIN


class Trail:
    """What an operation adds to its closing event (``trail.details.update(...)``), and that
    event's outcome when it completed with a reservation (a backup's ``incomplete``)."""

    def __init__(self) -> None:
        self.details: dict[str, Any] = {}
        self.outcome = "success"


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
        error = (f"the Prefect server stopped answering ({type(exc).__name__}); nothing after that point was done"
                 if is_server_failure(exc) else f"{type(exc).__name__}: {exc}")
        record(f"{kind}.failed", details={**base, **trail.details, "error": error}, outcome="failed", **common)
        raise
    record(f"{kind}.completed", details={**base, **trail.details}, outcome=trail.outcome, **common)
