"""The audit event types backupflow writes, by name (``AuditEventType.BACKUP_COMPLETED``).

Types are dotted, ``<operation>.<stage>``; a query for ``backup`` matches every ``backup.*``.
``get_event_summary`` also counts each type under its snake-case name (``backup_completed``),
the form the in-house API used.
"""

from __future__ import annotations

from enum import StrEnum


class AuditEventType(StrEnum):
    BACKUP_STARTED = "backup.started"
    BACKUP_COMPLETED = "backup.completed"
    BACKUP_FAILED = "backup.failed"
    RESTORE_REQUESTED = "restore.requested"
    RESTORE_COMPLETED = "restore.completed"
    RESTORE_FAILED = "restore.failed"
    RESTORE_REJECTED = "restore.rejected"
    DELETE_REQUESTED = "delete.requested"
    DELETE_COMPLETED = "delete.completed"
    DELETE_FAILED = "delete.failed"
    DELETE_REJECTED = "delete.rejected"
    PRUNE_STARTED = "prune.started"
    PRUNE_COMPLETED = "prune.completed"
    PRUNE_FAILED = "prune.failed"
    ARCHIVE_STARTED = "archive.started"
    ARCHIVE_COMPLETED = "archive.completed"
    ARCHIVE_FAILED = "archive.failed"
    CLEANUP_STARTED = "cleanup.started"
    CLEANUP_COMPLETED = "cleanup.completed"
    CLEANUP_FAILED = "cleanup.failed"
    REPAIR_STARTED = "repair.started"
    REPAIR_COMPLETED = "repair.completed"
    REPAIR_FAILED = "repair.failed"
    POLICY_REQUESTED = "policy.requested"
    POLICY_COMPLETED = "policy.completed"
    POLICY_FAILED = "policy.failed"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_DECIDED = "approval.decided"
    APPROVAL_REFUSED = "approval.refused"
    APPROVAL_TIMED_OUT = "approval.timed_out"
    VERSION_CREATED = "version.created"
    VERSION_TAGGED = "version.tagged"
    VERSION_RESTORED = "version.restored"
    CONFIG_ERROR = "config.error"

    @property
    def summary_key(self) -> str:
        """The name the in-house API's summary used: ``backup_completed``."""
        return snake(self.value)


def snake(event_type: str) -> str:
    return event_type.replace(".", "_")
