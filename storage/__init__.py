"""storage: the backupflow engine. No Prefect here; usable and testable on its own.

Layers (each imports only those below it; import-linter holds them, pyproject.toml):
repository (front door; audit and guardian beside it) -> snapshots -> objects (chunks,
packs, index) -> backend -> config, layout, sizes -> errors.

What tasks/, flows/ and deployments/ import, and nothing below it:
- here: the Repository front door and the plain data its steps pass between Prefect tasks;
- storage.errors (every error the CLI maps to an exit code), storage.config (settings);
- storage.backend: display_url, the URL and option credential checks, cloud_destination,
  ensure_container, split_secret_options; and open_backend, which the audit command uses to
  check the events mirrored into a repository;
- storage.snapshots: SnapshotType, ScanResult, shown/require_text (names as people read them);
- storage.audit (the audit log and its records), storage.guardian (approval policy, signatures);
- storage.sizes: human_bytes.
"""

from storage.repository import (
    BackupPlan, BackupResult, BackupSummary, ForgetPlan, IndexRepair, LeaseTimes, PruneReport, Repository, RestorePlan,
    RestoreResult, SnapshotRepairPlan, StoreResult, VerifyReport, summarize,
)

__all__ = ["BackupPlan", "BackupResult", "BackupSummary", "ForgetPlan", "IndexRepair", "LeaseTimes", "PruneReport",
           "Repository", "RestorePlan", "RestoreResult", "SnapshotRepairPlan", "StoreResult", "VerifyReport",
           "summarize"]

from storage.repository import Candidate, CleanupPlan, RetentionPolicy, apply_policy  # noqa: E402  (retention)

__all__ += ["Candidate", "CleanupPlan", "RetentionPolicy", "apply_policy"]
