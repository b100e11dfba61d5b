"""The Repository: the front door to everything stored at one URL."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any

from storage.allocator import tune_allocator
from storage.limits import raise_open_files_limit
from storage.backend import Backend, display_url, open_backend, scheme_of
from storage.crypto import PLAIN, KeyRing, MasterKey, Sealer, create_key_file, unlock
from storage.errors import AlreadyExists, ChainGone, IntegrityError, InvalidInput, NotARepository, NotFound
from storage.layout import INDEX, KEYS, SNAPSHOTS
from storage.objects import Codec, Index
from storage.repository import backup as backup_mod
from storage.repository import locks, workflows
from storage.repository.backup_report import Missing
from storage.repository.cleanup import CleanupPlan, plan_cleanup
from storage.repository.export import ExportResult, export_snapshot
from storage.repository.history import FileChange, file_history
from storage.repository.forget import ForgetPlan, ForgetResult, forget, plan_forget
from storage.repository.format import CONFIG_NAME, RepoConfig, is_encrypted
from storage.repository.prune import PruneReport, prune
from storage.repository.query import RepositoryStats, SnapshotDiff, diff_snapshots, list_entries, repository_stats
from storage.repository.repair import (IndexRepair, SnapshotRepairPlan, plan_repair_snapshots, repair_index,
                                       repair_snapshots)
from storage.repository.retention import RetentionPolicy
from storage.repository.sized_diff import SizedDiff, diff_snapshots_sized, diff_with_folder
from storage.repository.restore import (
    RestorePlan, RestoreResult, default_workers, plan_restore, restore_snapshot,
)
from storage.repository.verify import VerifyReport, verify_repository
from storage.snapshots import ScanResult, Snapshot, SnapshotStore
from storage.versions import VersionStore


@dataclass
class BackupResult:
    snapshot_id: str
    type: str
    parent: str | None
    base_full: str | None
    stats: dict[str, Any]
    warnings: list[str]
    missing: list[Missing] = field(default_factory=list)  # what could not be read: incomplete

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot_id": self.snapshot_id, "type": self.type, "parent": self.parent,
                "base_full": self.base_full, "stats": self.stats, "warnings": self.warnings,
                "incomplete": self.missing}


def _has_repository_objects(backend: Backend) -> bool:
    return any(next(iter(backend.list(prefix)), None) is not None for prefix in (SNAPSHOTS, INDEX))


def _read_config(backend: Backend, raw: bytes, where: str, password: str | None) -> tuple[RepoConfig, KeyRing | None]:
    """The config and, for an encrypted repository, its key ring (the password is checked
    against the key files before anything else is read)."""
    if not is_encrypted(raw, where):
        return RepoConfig.from_bytes(raw, where), None
    master, key_id = unlock(backend, password, where, lambda m: _opens(raw, where, m))
    return RepoConfig.from_bytes(raw, where, master.sealer()), KeyRing(backend, master, key_id)


def _opens(raw: bytes, where: str, master: MasterKey) -> bool:
    try:
        RepoConfig.from_bytes(raw, where, master.sealer())
    except IntegrityError:
        return False
    return True


class Repository:
    def __init__(self, backend: Backend, config: RepoConfig, url: str, keys: KeyRing | None = None):
        tune_allocator()
        raise_open_files_limit()
        self.backend = backend
        self.config = config
        self.url = url
        self._keys = keys
        self.sealer: Sealer = keys.master.sealer() if keys is not None else PLAIN
        self.snapshots = SnapshotStore(backend, self.sealer)
        self._index: Index | None = None

    @property
    def encrypted(self) -> bool:
        return self._keys is not None

    @property
    def keys(self) -> KeyRing:
        """The key files (list, add, remove, passwd) of an encrypted repository."""
        if self._keys is None:
            raise InvalidInput(f"{display_url(self.url)} is not encrypted, so it has no keys.")
        return self._keys

    def codec(self) -> Codec:
        """A blob codec for this repository (its compression level and sealer)."""
        return Codec(self.config.compression_level, self.sealer)

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def init(cls, url: str, options: dict[str, Any] | None = None, compression_level: int = 3,
             pack_size_mib: int = 16, backend: Backend | None = None, password: str | None = None,
             key_label: str | None = None) -> "Repository":
        """Create a repository in an empty location: encrypted with ``password``, unencrypted
        without one (the CLI decides the default)."""
        backend = backend or open_backend(url, options)
        where = display_url(url)
        try:
            is_encrypted(backend.load(CONFIG_NAME), where)  # raises for a config that is not ours
            raise AlreadyExists(f"{where} is already a backupflow repository.")
        except NotFound:
            pass
        if next(iter(backend.list("")), None) is not None:
            raise NotARepository(f"{where} already holds other files; choose an empty location for a new repository.")
        if password is None:
            config = RepoConfig.new(compression_level, pack_size_mib)
            backend.save(CONFIG_NAME, config.to_bytes())
            return cls(backend, config, url)
        master = MasterKey.new()
        config = RepoConfig.new(compression_level, pack_size_mib, master.chunker_seed(), encrypted=True)
        # The key file first: a config without one would be a repository nobody can open.
        key_id = create_key_file(backend, master, password, key_label)
        try:
            backend.save(CONFIG_NAME, config.to_bytes(master.sealer()))
        except BaseException:
            backend.remove(KEYS + key_id)  # another init won the race: its key files stay alone
            raise
        return cls(backend, config, url, KeyRing(backend, master, key_id))

    @classmethod
    def open(cls, url: str, options: dict[str, Any] | None = None, create: bool = False,
             backend: Backend | None = None, password: str | None = None, **init_args) -> "Repository":
        """Open the repository at ``url``; with ``create``, make one in an empty location
        (encrypted when a ``password`` is given). An encrypted repository needs its
        ``password`` (PasswordRequired, WrongPassword); an unencrypted one ignores it."""
        backend = backend or open_backend(url, options)
        where = display_url(url)
        try:
            raw = backend.load(CONFIG_NAME)
        except NotFound:
            if create:
                try:
                    return cls.init(url, options, backend=backend, password=password, **init_args)
                except (AlreadyExists, NotARepository) as exc:
                    # Two first backups at once: the other one created the repository between
                    # our look and our write. Use its config; anything else stays refused.
                    try:
                        raw = backend.load(CONFIG_NAME)
                    except NotFound:
                        raise exc from None
                    config, keys = _read_config(backend, raw, where, password)
                    return cls(backend, config, url, keys)
            if _has_repository_objects(backend):
                raise IntegrityError(f"The repository config of {where} is missing, although snapshots or packs are "
                                     "there; put back the `config` object from a copy of the repository.") from None
            if next(iter(backend.list("")), None) is not None:
                raise NotARepository(f"{where} is not a backupflow repository (it has no config object).") from None
            raise NotFound(f"There is no repository at {where}; create one with `backupflow init`.") from None
        config, keys = _read_config(backend, raw, where, password)
        return cls(backend, config, url, keys)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_local(self) -> bool:
        return scheme_of(self.url) in ("file", "memory")

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.load(self.backend, sealer=self.sealer)
        return self._index

    def refresh(self) -> None:
        self._index = None
        self.snapshots = SnapshotStore(self.backend, self.sealer)

    # --- backup ----------------------------------------------------------------------------
    def plan_backup(self, source: str, type: str | None = None, excludes=(), tags=(), description: str = "",
                    author: str | None = None) -> backup_mod.BackupPlan:
        return backup_mod.plan_backup(self, source, type, excludes, tags, description, author)

    def scan(self, plan: backup_mod.BackupPlan) -> ScanResult:
        return backup_mod.scan_for_plan(self, plan)

    def store(self, plan: backup_mod.BackupPlan, scan: ScanResult, progress=None,
              connections: int | None = None) -> backup_mod.StoreResult:
        return backup_mod.store_files(self, plan, scan, progress, connections)

    def commit(self, plan: backup_mod.BackupPlan, stored: backup_mod.StoreResult) -> Snapshot:
        return backup_mod.commit_snapshot(self, plan, stored)

    def abandon(self, plan: backup_mod.BackupPlan) -> None:
        backup_mod.abandon(self, plan)

    def backup(self, source: str, type: str | None = None, excludes=(), tags=(), description: str = "",
               author: str | None = None, progress=None, connections: int | None = None) -> BackupResult:
        """Plan, scan, store and commit in one call (the flow runs the same steps as tasks)."""
        for attempt in (1, 2):
            plan = self.plan_backup(source, type, excludes, tags, description, author)
            try:
                scan = self.scan(plan)
                stored = self.store(plan, scan, progress, connections)
                snap = self.commit(plan, stored)
                break
            except ChainGone:
                self.abandon(plan)
                if attempt == 2:
                    raise
                self.refresh()
                type = "full"  # its chain was forgotten under it: start a new one (chains.py)
            except BaseException:
                self.abandon(plan)
                raise
        return BackupResult(snap.id, snap.type, snap.parent, snap.base_full, snap.stats, stored.warnings,
                            stored.missing)

    # --- reading ---------------------------------------------------------------------------
    def snapshot(self, ref: str) -> Snapshot:
        return self.snapshots.resolve(ref)

    def save_workflows(self, snapshot_id: str, export: dict[str, Any]) -> str:
        """Keep ``export`` (deployments, schedules, automations; no secrets) with the snapshot."""
        return workflows.save_workflows(self.backend, self.sealer, snapshot_id, export)

    def preview_diff(self, ref: str, other: str | None = None) -> SizedDiff:
        """What changed from snapshot ``ref`` to snapshot ``other``, or (None) to the live folder
        ``ref`` was taken of, with sizes (storage/repository/sized_diff.py)."""
        snap = self.snapshots.load(self.snapshot(ref).id)
        if other:
            return diff_snapshots_sized(snap, self.snapshots.load(self.snapshot(other).id))
        if not os.path.isdir(snap.source):
            raise InvalidInput(f"The folder {snap.source} that snapshot {snap.id[:8]} was taken of is not here; "
                               "compare it with another snapshot instead.")
        return diff_with_folder(snap, snap.source)

    def tags_with_versions(self, tags: list[str]) -> list[str]:
        """``tags`` and, when this repository keeps version history, the mark that says so."""
        return workflows.with_versions_mark(tags, self.backend)

    def workflows(self, ref: str) -> dict[str, Any]:
        """The workflows export a snapshot carries (NotFound, in one sentence, when none)."""
        return workflows.load_workflows(self.backend, self.sealer, self.snapshot(ref).id)

    def plan_restore(self, ref: str, target: str, include: list[str] | None = None) -> RestorePlan:
        return plan_restore(self.snapshot(ref), target, include)

    def reading(self, what: str):
        """A shared read lease for the body: no prune deletes what it reads (locks.py)."""
        return locks.reading(self.backend, uuid.uuid4().hex, what)

    def restore(self, ref: str, target: str, include: list[str] | None = None, progress=None,
                connections: int | None = None) -> RestoreResult:
        """Restore into ``target``; ``connections`` packs are fetched and written at once
        (default: 4 in the cloud, one per processor up to 4 on local disk: restore.default_workers).
        Files that could not be restored are named in ``not_restored``; the rest is restored."""
        with self.reading("restore"):
            workers = connections or default_workers(self.is_local)
            return restore_snapshot(self, self.snapshot(ref), target, include, progress, workers=workers)

    def verify(self, read_data: bool = False, progress=None, expected: dict[str, str] | None = None) -> VerifyReport:
        """Verify under a read lease; problems found while the repository changed (a backup
        committed, a forget ran) are checked again on a fresh view before they are reported.
        ``expected``: snapshot ids another record (the audit log) says exist -> a description."""
        looks = 3
        with self.reading("verify"):
            for look in range(looks):
                before = self._fingerprint()
                report = verify_repository(self, read_data, progress, expected=expected)
                report.rechecks = look
                if report.ok or self._fingerprint() == before:
                    return report
                self.refresh()  # changed under me, not damage until a fresh look agrees
        report.problems.append(f"the repository changed during each of {looks} looks (other runs write to it), so "
                               "some of these problems may be changes, not damage; verify again when they finish")
        return report

    def _fingerprint(self) -> tuple[frozenset[str], frozenset[str]]:
        return (frozenset(o.name for o in self.backend.list(SNAPSHOTS)),
                frozenset(o.name for o in self.backend.list(INDEX)))

    def export_tar(self, ref: str, path: str, include: list[str] | None = None) -> ExportResult:
        with self.reading("export"):
            return export_snapshot(self, self.snapshot(ref), path, include)

    def ls(self, ref: str, prefix: str | None = None) -> list[dict[str, Any]]:
        with self.reading("ls"):
            return list_entries(self.snapshot(ref), prefix)

    def diff(self, ref_a: str, ref_b: str) -> SnapshotDiff:
        with self.reading("diff"):
            return diff_snapshots(self.snapshot(ref_a), self.snapshot(ref_b))

    def file_history(self, path: str) -> list[FileChange]:
        """The snapshots in which the file at ``path`` was added, changed or deleted (history.py)."""
        with self.reading("history"):
            return file_history(self, path)

    def stats(self) -> RepositoryStats:
        return repository_stats(self)

    # --- version history -------------------------------------------------------------------
    def versions(self) -> VersionStore:
        """Per-file version history in this repository (storage/versions/)."""
        return VersionStore(self.backend, self.config.chunker, self.codec(),
                            lambda: Index.load(self.backend, sealer=self.sealer), self._versioning)

    @contextmanager
    def _versioning(self):
        """A shared ``version`` lease while content is stored: no prune deletes a pack that a
        new version has just come to rely on (docs/FORMAT.md, "leases")."""
        lease = locks.Lease(self.backend, uuid.uuid4().hex, "version", what="version").acquire()
        try:
            locks.wait_for_no_exclusive(self.backend, lease, "version")
            yield lease
        finally:
            lease.release()

    # --- deleting --------------------------------------------------------------------------
    def plan_forget(self, refs: list[str], prune: bool = False, chain: bool = False) -> ForgetPlan:
        return plan_forget(self, refs, prune, chain)

    def forget(self, plan: ForgetPlan) -> ForgetResult:
        return forget(self, plan)

    def plan_cleanup(self, policy: RetentionPolicy, now: datetime | None = None) -> CleanupPlan:
        return plan_cleanup(self, policy, now)

    def prune(self, dry_run: bool = False) -> PruneReport:
        return prune(self, dry_run)

    # --- repairing -------------------------------------------------------------------------
    def repair_index(self) -> IndexRepair:
        return repair_index(self)

    def plan_repair_snapshots(self, read_data: bool = False) -> SnapshotRepairPlan:
        return plan_repair_snapshots(self, read_data)

    def repair_snapshots(self, plan: SnapshotRepairPlan) -> dict[str, Any]:
        return repair_snapshots(self, plan)
