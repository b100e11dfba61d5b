"""storage.audit: the tamper-evident audit log.

Purpose: every operation that reads or changes backups (backup, restore, deletion, archive,
approval requests and decisions, configuration errors) leaves an event that nobody can edit
or remove unnoticed.

Vocabulary:
- *event*: one JSON object with ``id, time (UTC ISO), type, user, host, flow_run_id, target,
  details, outcome, prev_hash, hash``. Types are dotted: ``backup.started``,
  ``restore.approved``, ``approval.requested``, ``config.error`` ...
- *day file*: ``audit_YYYY-MM-DD.jsonl`` in the audit directory, one event per line, by UTC day.
- *chain*: each event's ``prev_hash`` is the ``hash`` of the event written before it, across
  day files; the first event chains to 64 zeros.
- *head*: ``audit.head``, the hash and count of the newest event, moved after every append.

Invariants:
- Append-only: nothing in this package rewrites or deletes a line.
- Concurrent writers (threads or processes) serialise on ``audit.lock``: no event is lost and
  lines never interleave.
- ``verify()`` finds an edited, inserted, reordered or deleted event, a missing day file, and
  events cut off the end, and names the file and line.
- Mirroring into a repository is a copy; a mirror failure never loses the local event.
- Every event is also anchored outside the local files (:mod:`storage.audit.anchors`), so a
  writer who rewrites or deletes the log and recomputes its hashes is still found out.

``audit_logger`` is bound lazily to the configured directory (``[audit] audit_path``,
overridden by ``BACKUPFLOW_AUDIT_PATH``), so ``audit_logger.get_events(...)`` always reads the
log the current configuration names.
"""

from __future__ import annotations

from typing import Any

from storage.audit.anchors import ANCHOR_HOOKS, Anchor, cross_check, log_id
from storage.audit.chain import GENESIS, Problem, VerifyReport
from storage.audit.log import AuditLog, current_user, parse_since
from storage.audit.mirror import RepositoryMirror, mirror_anchors, read_mirror
from storage.audit.types import AuditEventType
from storage.backend import open_backend
from storage.config import Settings, load_settings
from storage.crypto import PLAIN, Sealer
from storage.errors import BackupError


def open_audit_log(settings: Settings | None = None, repository: str | None = None,
                   options: dict[str, Any] | None = None, sealer: Sealer = PLAIN) -> AuditLog:
    """The audit log the settings name; mirrored into ``repository`` when
    ``[audit] mirror_to_repository`` is on and a repository URL is given (sealed with
    ``sealer``, the open repository's ``repo.sealer``; an encrypted repository gets no
    events without it)."""
    settings = settings or load_settings()
    mirror = None
    if repository and settings.audit.mirror_to_repository:
        mirror = RepositoryMirror(open_backend(repository, options), sealer)
    return AuditLog(settings.audit_path, mirror=mirror)


def log_config_error(message: str, source: str | None = None) -> None:
    """Record a configuration error; never raises (the error being reported matters more).

    The configuration may be the thing that is broken, so an unreadable config falls back to
    the default audit directory (still overridden by ``BACKUPFLOW_AUDIT_PATH``)."""
    try:
        settings = load_settings(source)
    except BackupError:
        settings = Settings()
    try:
        AuditLog(settings.audit_path).log_event("config.error", details={"message": message}, outcome="failed")
    except BackupError:
        pass


class _ConfiguredAuditLog:
    """Resolves the configured audit directory on every use (config and env may change)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(AuditLog(load_settings().audit_path), name)

    def __repr__(self) -> str:
        return "<audit_logger bound to the configured audit_path>"


audit_logger = _ConfiguredAuditLog()

__all__ = [
    "ANCHOR_HOOKS", "Anchor", "cross_check", "log_id", "mirror_anchors",
    "AuditEventType", "AuditLog", "GENESIS", "Problem", "RepositoryMirror", "VerifyReport", "audit_logger",
    "current_user", "log_config_error", "open_audit_log", "parse_since", "read_mirror",
]
