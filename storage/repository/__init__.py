"""storage.repository: the front door. Opens a repository at a URL and runs backup, restore,
verify, export and read-only queries over the lower layers (snapshots, objects, backend).

Vocabulary: *run* — one backup attempt, identified by a random id, holding a lease while it
lives (locks.py); *plan* — the plain-data description of a run; *adopt* — a run claiming the unclaimed
packs of a dead run instead of uploading them again.
*repair* — rebuild the index from pack headers, or rewrite snapshots without what is lost;
*forget* — delete snapshot manifests (never one a remaining snapshot needs); *cleanup* — a
retention policy (retention.py) turned into a forget; *prune* — delete
the packs no remaining snapshot and no live run needs, under an exclusive prune lease.
Invariants: the write order, what forget and prune may delete, and the lease handshake are
stated in docs/FORMAT.md ("write order and concurrency", "leases"); this package carries them out.
"""

from storage.repository.backup import BackupPlan, StoreResult
from storage.repository.backup_report import BackupSummary, summarize
from storage.repository.export import ExportResult
from storage.repository.forget import ForgetPlan, ForgetResult
from storage.repository.locks import LeaseTimes
from storage.repository.prune import PruneReport
from storage.repository.query import RepositoryStats, SnapshotDiff
from storage.repository.repair import IndexRepair, SnapshotRepairPlan
from storage.repository.repository import BackupResult, Repository
from storage.repository.restore import RestorePlan, RestoreResult
from storage.repository.verify import VerifyReport

__all__ = ["BackupPlan", "BackupResult", "BackupSummary", "ExportResult", "ForgetPlan", "ForgetResult", "IndexRepair",
           "LeaseTimes", "PruneReport", "Repository", "RepositoryStats", "RestorePlan", "RestoreResult", "SnapshotDiff",
           "SnapshotRepairPlan", "StoreResult", "VerifyReport", "summarize"]

# retention: the policy arithmetic (retention.py) and its plan for a repository (cleanup.py)
from storage.repository.cleanup import CleanupPlan  # noqa: E402
from storage.repository.retention import Candidate, RetentionPolicy, apply_policy  # noqa: E402

__all__ += ["Candidate", "CleanupPlan", "RetentionPolicy", "apply_policy"]
