"""Backup in three steps that can run as separate (retryable) tasks: plan, store, commit.

- ``plan_backup`` picks the type and chain and takes a run lock.
- ``store_files`` reads, chunks and hashes files on reader threads (``FileSaver``,
  file_saver.py) and compresses, packs and uploads them (``PackSaver``, pack_saver.py), so
  reading, hashing, compressing and uploading overlap (hashlib and zstandard release the GIL).
  It writes index objects as packs land, so a retry or the next run after a crash reuses every
  pack already uploaded.
- ``commit_snapshot`` writes the manifest, last. Before it, no snapshot exists.

Chains (docs/FORMAT.md, "chains"): a full dedups only against itself; an incremental against its whole
chain; a differential against its base full. Unclaimed packs of dead runs are adopted.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from storage.errors import BackupError, IntegrityError, InvalidInput
from storage.layout import list_packs
from storage.objects import IndexWriter, load_pack_header
from storage.repository import chains, leftovers, locks
from storage.repository.backup_report import BackupStats, Missing, ratio
from storage.repository.file_saver import FileSaver, Progress
from storage.repository.pack_saver import PackSaver
from storage.versions import is_version_run
from storage.snapshots import ScanResult, Snapshot, SnapshotType, TreeEntry, scan_workspace
from storage.snapshots.manifest import SNAPSHOT_TYPES
from storage.snapshots.names import shown

if TYPE_CHECKING:
    from storage.repository.repository import Repository


@dataclass
class BackupPlan:
    """Plain data describing one backup run; safe to pass between Prefect tasks."""

    run: str
    type: SnapshotType
    chain: str
    source: str
    host: str
    author: str
    started: str
    parent: str | None = None
    base_full: str | None = None
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    leftovers: dict[str, Any] = field(default_factory=dict)  # what this run removed of killed runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StoreResult:
    """What ``store_files`` produced: the finished tree, the packs added or adopted, stats,
    warnings, and what the snapshot lacks because it could not be read (``missing``).

    A plain class like ScanResult: Prefect walks dataclasses passed between tasks, and the
    tree can hold hundreds of thousands of entries."""

    def __init__(self, entries: list[dict[str, Any]], packs: list[str], stats: BackupStats, warnings: list[str],
                 missing: list[Missing] | None = None):
        self.entries = entries
        self.packs = packs
        self.stats = stats
        self.warnings = warnings
        self.missing = missing or []
        self.parent_tree: list[Any] | None = None  # see ScanResult
        self.parent_tree_id: str | None = None


def _same_source(s: Snapshot, source: str, host: str) -> bool:
    return s.source == source and s.host == host


def plan_backup(repo: Repository, source: str, type: str | None = None, excludes: Iterable[str] = (),
                tags: Iterable[str] = (), description: str = "",
                author: str | None = None) -> BackupPlan:
    src = os.path.abspath(os.path.expanduser(source))
    if not os.path.isdir(src):
        what = "does not exist" if not os.path.lexists(src) else "is not a directory"
        raise InvalidInput(f"The source {source} {what}; give a directory to back up.")
    if type is not None and type not in SNAPSHOT_TYPES:
        raise InvalidInput(f"--type {type!r} is not one of full, incremental, differential.")
    host = socket.gethostname()
    mine = [s for s in repo.snapshots.all() if _same_source(s, src, host)]
    fulls = [s for s in mine if s.type == "full"]
    last_full = fulls[-1] if fulls else None
    kind: SnapshotType = type or ("incremental" if last_full else "full")
    if kind != "full" and last_full is None:
        raise InvalidInput(f"There is no full backup of {src} to base a {kind} backup on; "
                           "run one with --type full first.")
    run = uuid.uuid4().hex
    plan = BackupPlan(
        run=run, type=kind, chain=run, source=src, host=host, author=author or getpass.getuser(),
        started=datetime.now(timezone.utc).isoformat(), excludes=list(excludes), tags=list(tags),
        description=description,
    )
    if last_full is not None and kind != "full":
        chain = [s for s in mine if s.chain == last_full.chain]
        plan.chain = last_full.chain
        plan.base_full = last_full.id
        plan.parent = chain[-1].id if kind == "incremental" else last_full.id
    lease = locks.acquire(repo.backend, run, "backup", what="backup", chain=plan.chain)
    # Lease first, then look: a prune does the same the other way round (locks.py), so a backup
    # and a prune never both go ahead and a prune never deletes packs this run may commit.
    locks.wait_for_no_exclusive(repo.backend, lease, "backup")
    plan.leftovers = leftovers.sweep(repo.backend, own_run=run).to_dict()
    return plan


def recover_unindexed_packs(repo: Repository, plan: BackupPlan, index_writer: IndexWriter) -> int:
    """Index the packs a killed run uploaded but never indexed, so this run can adopt them.

    Only when no other backup is alive: a live run's packs are unindexed for a while too, and
    adopting them would make two chains share a pack. Pack headers make this cheap: two ranged
    reads per pack, no data read. Returns how many packs were recovered."""
    if locks.live_writers(repo.backend) - {plan.run}:
        return 0
    index = repo.index
    stored = set(list_packs(repo.backend))
    recovered = 0
    for pack in sorted(stored - set(index.pack_run)):
        try:
            blobs = load_pack_header(repo.backend, pack, repo.sealer)
        except BackupError:
            continue  # not a whole pack: left for verify to report and cleanup to remove
        index.add_pack(pack, plan.run, blobs)
        index_writer.add(pack, blobs)
        recovered += 1
    index_writer.flush()
    return recovered


def _allowed_packs(repo: Repository, plan: BackupPlan) -> tuple[set[str], set[str]]:
    """(packs this run may dedup against, of which unclaimed orphans it would adopt)."""
    snaps = repo.snapshots.all()
    claimed = {p for s in snaps for p in s.packs}
    live = locks.live_runs(repo.backend) - {plan.run}
    index = repo.index
    # Packs of the version history are nobody's orphans: adopting one would tie chains together.
    orphans = {p for p, run in index.pack_run.items()
               if p not in claimed and run not in live and not is_version_run(run)}
    if plan.type == "incremental":
        base = {p for s in snaps if s.chain == plan.chain for p in s.packs}
    elif plan.type == "differential" and plan.base_full:
        base = set(repo.snapshots.header(plan.base_full).packs)
    else:
        base = set()
    return base | orphans, orphans


def _tree_or_none(repo: Repository, sid: str, warnings: list[str]) -> list[TreeEntry] | None:
    """A parent's tree, or None with a warning when it is damaged: the backup then reads every
    file again instead of failing (damage stays local; verify names the tree)."""
    try:
        return repo.snapshots.load(sid).tree
    except IntegrityError as exc:
        warnings.append(f"{exc.message} Every file is read again for this backup.")
        return None


def scan_for_plan(repo: Repository, plan: BackupPlan) -> ScanResult:
    previous: dict[str, Any] = {}
    can_reuse = None
    warnings: list[str] = []
    if plan.type != "full":
        chain = [s for s in repo.snapshots.all() if s.chain == plan.chain and _same_source(s, plan.source, plan.host)]
        warnings += [f"snapshot {sid[:8]} was left out as a possible parent: {why}"
                     for sid, why in sorted(repo.snapshots.damaged.items())]
        tree = _tree_or_none(repo, chain[-1].id, warnings) if chain else None
        previous = {e["path"]: e for e in tree or () if e.get("type") == "file"}
        if plan.type == "differential" and plan.base_full and tree is not None and chain[-1].id != plan.base_full:
            base = _tree_or_none(repo, plan.base_full, warnings) or []
            base_chunks = {c for e in base for c in e.get("chunks", ())}
            can_reuse = lambda e: all(c in base_chunks for c in e["chunks"])  # noqa: E731
    scan = scan_workspace(plan.source, plan.excludes, previous, can_reuse)
    scan.warnings[:0] = warnings
    if plan.type != "full" and chain and tree is not None:
        scan.parent_tree, scan.parent_tree_id = tree, chain[-1].tree_id
    return scan


def store_files(repo: Repository, plan: BackupPlan, scan: ScanResult, progress: Progress | None = None,
                connections: int | None = None, workers: int | None = None) -> StoreResult:
    """Read, chunk and pack every file the scan marked (FileSaver -> PackSaver), on ``workers``
    reader threads and ``connections`` upload threads."""
    started = time.monotonic()
    if connections is None:
        connections = 1 if repo.is_local else 4  # one local write runs while the next pack fills
    packer = PackSaver(repo, plan.run, plan.chain, set(), connections)
    saver = FileSaver(repo.config.chunker, packer, scan.source, progress)
    try:
        if scan.to_read:
            recovered = recover_unindexed_packs(repo, plan, packer.index_writer)
            allowed, orphans = _allowed_packs(repo, plan)
        else:  # nothing to read: no chunk to dedup, no pack to adopt (not even the index is loaded)
            recovered, allowed, orphans = 0, set(), set()
        if allowed:
            packer.known.update(repo.index.chunks_in_packs(allowed))
        # One reader per core: hashing, chunking and compressing release the GIL, and a third
        # thread bought no speed on 2 cores but cost 15 MiB (benchmark workspace).
        saver.save_all(scan.entries, scan.to_read, workers or os.cpu_count() or 2)
    except BaseException:
        # Interrupted (Ctrl-C) or failed: reader threads may still be adding to the open pack,
        # so shipping it now races with them (its file moved away under a writer). Drop it.
        packer.broken = True
        raise
    finally:
        packer.finish()
    entries = _without_dropped(scan.entries, saver)
    packs = sorted(set(packer.packs) | _used_orphans(repo, entries, orphans))
    stats = _stats(entries, saver, packer, recovered, time.monotonic() - started)
    result = StoreResult(entries, packs, stats, scan.warnings + saver.warnings, scan.missing + saver.missing)
    result.parent_tree, result.parent_tree_id = scan.parent_tree, scan.parent_tree_id
    return result


def _without_dropped(entries: list[dict[str, Any]], saver: FileSaver) -> list[dict[str, Any]]:
    """The tree without the files the saver dropped, nor the hard links to them (the restore
    of a link to a missing entry is refused)."""
    if not saver.dropped:
        return entries
    gone = {entries[i]["path"] for i in saver.dropped}
    kept = []
    for i, e in enumerate(entries):
        if i in saver.dropped:
            continue
        if e["type"] == "hardlink" and e["link"] in gone:
            saver.warnings.append(f"{shown(e['path'])} is a hard link to {shown(e['link'])}, which was not backed "
                                  "up; not backed up either")
            continue
        kept.append(e)
    return kept


def _used_orphans(repo: Repository, entries: list[dict[str, Any]], orphans: set[str]) -> set[str]:
    """The orphan packs this run adopts: those holding a chunk its tree needs."""
    used: set[str] = set()
    if orphans:
        needed = {c for e in entries for c in e.get("chunks", ())}
        for cid in needed:
            for loc in repo.index.locations(cid):
                if loc.pack in orphans:
                    used.add(loc.pack)
    return used


def _stats(entries: list[dict[str, Any]], saver: FileSaver, packer: PackSaver, recovered: int,
           seconds: float) -> BackupStats:
    kinds: dict[str, int] = {}
    total = 0
    for e in entries:  # one pass: a tree can hold hundreds of thousands of entries
        kind = e["type"]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "file":
            total += e.get("size", 0)
    return BackupStats(
        files=kinds.get("file", 0) + kinds.get("hardlink", 0),
        dirs=kinds.get("dir", 0),
        symlinks=kinds.get("symlink", 0),
        bytes_total=total,
        files_read=saver.files,
        bytes_read=saver.bytes,
        chunks_added=packer.new_chunks,
        bytes_new=packer.new_raw,
        bytes_added=packer.new_stored,
        packs_added=len(packer.packs),
        packs_recovered=recovered,
        dedup_ratio=ratio(total, packer.new_raw),
        compression_ratio=ratio(packer.new_raw, packer.new_stored),
        store_seconds=round(seconds, 3),
    )


def commit_snapshot(repo: Repository, plan: BackupPlan, stored: StoreResult) -> Snapshot:
    lease = locks.held(plan.run)
    if lease is not None:
        lease.check()
    chains.check_base(repo, plan)
    stats = dict(stored.stats)
    stats["warnings"] = len(stored.warnings)
    if stored.missing:
        stats["missing"] = len(stored.missing)
    if plan.leftovers.get("leases_removed") or plan.leftovers.get("temporaries_deleted"):
        stats["leftovers_removed"] = {k: plan.leftovers[k] for k in ("leases_removed", "temporaries_deleted")}
    snap = Snapshot(
        type=plan.type, run=plan.run, chain=plan.chain, time=datetime.now(timezone.utc).isoformat(),
        host=plan.host, source=plan.source, parent=plan.parent, base_full=plan.base_full,
        tags=plan.tags, description=plan.description, author=plan.author, stats=stats,
        packs=stored.packs, tree=cast(list[TreeEntry], stored.entries),  # the scan's entries, finished
    )
    same_tree = stored.parent_tree_id if stored.parent_tree is not None and stored.parent_tree == snap.tree else None
    repo.snapshots.save(snap, same_tree_as=same_tree)
    chains.undo_if_base_gone(repo, plan, snap)
    locks.release(repo.backend, plan.run)
    return snap


def abandon(repo: Repository, plan: BackupPlan) -> None:
    """A failed run: release its lock so its packs can be adopted by the next run."""
    locks.release(repo.backend, plan.run)
