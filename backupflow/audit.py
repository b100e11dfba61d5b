"""``backupflow.audit``: the audit log (``audit_logger``) and its event types (``AuditEventType``)."""

from storage.audit import AuditEventType, AuditLog, audit_logger

__all__ = ["AuditEventType", "AuditLog", "audit_logger"]
