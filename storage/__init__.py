"""storage: the backupflow engine. No Prefect here; usable and testable on its own.

Layers (each imports only those below it):
repository (front door) -> snapshots -> objects (chunks, packs, index) -> backend -> errors.
Everything above storage/ uses the names exported here and from storage.errors.
"""

from storage.repository import (
    BackupPlan, BackupResult, BackupSummary, ForgetPlan, IndexRepair, LeaseTimes, PruneReport, Repository, RestorePlan,
    RestoreResult, SnapshotRepairPlan, StoreResult, VerifyReport, summarize,
)

__all__ = ["BackupPlan", "BackupResult", "BackupSummary", "ForgetPlan", "IndexRepair", "LeaseTimes", "PruneReport",
           "Repository", "RestorePlan", "RestoreResult", "SnapshotRepairPlan", "StoreResult", "VerifyReport",
           "summarize"]
