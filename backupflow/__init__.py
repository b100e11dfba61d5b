"""backupflow: the Python API (the in-house ``app.storage`` module's names, backed by the engine
and the Prefect flows). It only re-exports; the code lives in flows/ and storage/::

    from backupflow import get_backup_manager, get_versioning_engine, get_guardian, audit_logger
    from backupflow.audit import AuditEventType

The configuration (``[backup]`` backup_path and source, the password sources) says what is
backed up and where; README, "From Python", shows the whole API.
"""

from flows.approvals import Guardian, get_guardian
from flows.backup_manager import BackupManager, BackupMetadata, get_backup_manager
from flows.versioning import VersioningEngine, get_versioning_engine
from storage.audit import AuditEventType, audit_logger
from storage.versions import Version

__all__ = ["AuditEventType", "BackupManager", "BackupMetadata", "Guardian", "Version", "VersioningEngine",
           "audit_logger", "get_backup_manager", "get_guardian", "get_versioning_engine"]
