"""Backup in three steps that can run as separate (retryable) tasks: plan, store, commit.

- ``plan_backup`` picks the type and chain and takes a run lock.
- ``store_files`` reads, chunks, hashes, compresses and packs file content on worker threads
  and uploads packs on others, so reading, hashing, compressing and uploading overlap
  (hashlib and zstandard release the GIL). It writes index objects as packs land, so a retry
  or the next run after a crash reuses every pack already uploaded.
- ``commit_snapshot`` writes the manifest, last. Before it, no snapshot exists.

Chains (DESIGN.md): a full dedups only against itself; an incremental against its whole
chain; a differential against its base full. Unclaimed packs of dead runs are adopted.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from storage.backend import sink_for
from storage.errors import BackupError, IntegrityError, InvalidInput, Locked
from storage.objects import Chunker, Codec, IndexWriter, PackWriter, load_pack_header, pack_name
from storage.repository import locks
from storage.snapshots import ScanResult, Snapshot, scan_workspace
from storage.snapshots.manifest import SNAPSHOT_TYPES

Progress = Callable[[int, int], None]  # (files done, bytes done)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class BackupPlan:
    """Plain data describing one backup run; safe to pass between Prefect tasks."""

    run: str
    type: str
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StoreResult:
    """What ``store_files`` produced: the finished tree, the packs added or adopted, stats."""

    def __init__(self, entries: list[dict], packs: list[str], stats: dict[str, Any], warnings: list[str]):
        self.entries = entries
        self.packs = packs
        self.stats = stats
        self.warnings = warnings


def _same_source(s: Snapshot, source: str, host: str) -> bool:
    return s.source == source and s.host == host


def plan_backup(repo, source: str, type: str | None = None, excludes=(), tags=(), description: str = "",
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
    if type is None:
        type = "incremental" if last_full else "full"
    if type != "full" and last_full is None:
        raise InvalidInput(f"There is no full backup of {src} to base a {type} backup on; run one with --type full first.")
    run = uuid.uuid4().hex
    plan = BackupPlan(
        run=run, type=type, chain=run, source=src, host=host, author=author or getpass.getuser(),
        started=datetime.now(timezone.utc).isoformat(), excludes=list(excludes), tags=list(tags),
        description=description,
    )
    if type != "full":
        chain = [s for s in mine if s.chain == last_full.chain]
        plan.chain = last_full.chain
        plan.base_full = last_full.id
        plan.parent = chain[-1].id if type == "incremental" else last_full.id
    locks.acquire(repo.backend, run, "backup")
    # Lock first, then look: a prune does the same the other way round (locks.py), so a backup
    # and a prune never both go ahead and a prune never deletes packs this run may commit.
    if any(doc.get("kind") == "prune" for doc in locks.live_locks(repo.backend)):
        locks.release(repo.backend, run)
        raise Locked("A prune is running on this repository; try the backup again when it finishes.")
    return plan


def recover_unindexed_packs(repo, plan: BackupPlan, index_writer: IndexWriter) -> int:
    """Index the packs a killed run uploaded but never indexed, so this run can adopt them.

    Only when no other backup is alive: a live run's packs are unindexed for a while too, and
    adopting them would make two chains share a pack. Pack headers make this cheap: two ranged
    reads per pack, no data read. Returns how many packs were recovered."""
    if locks.live_runs(repo.backend) - {plan.run}:
        return 0
    index = repo.index
    stored = {o.name.rsplit("/", 1)[-1] for o in repo.backend.list("data/")}
    recovered = 0
    for pack in sorted(stored - set(index.pack_run)):
        try:
            blobs = load_pack_header(repo.backend, pack)
        except BackupError:
            continue  # not a whole pack: left for verify to report and cleanup to remove
        index.add_pack(pack, plan.run, blobs)
        index_writer.add(pack, blobs)
        recovered += 1
    index_writer.flush()
    return recovered


def _allowed_packs(repo, plan: BackupPlan) -> tuple[set[str], set[str]]:
    """(packs this run may dedup against, of which unclaimed orphans it would adopt)."""
    snaps = repo.snapshots.all()
    claimed = {p for s in snaps for p in s.packs}
    live = locks.live_runs(repo.backend) - {plan.run}
    index = repo.index
    orphans = {p for p, run in index.pack_run.items() if p not in claimed and run not in live}
    if plan.type == "full":
        base: set[str] = set()
    elif plan.type == "incremental":
        base = {p for s in snaps if s.chain == plan.chain for p in s.packs}
    else:
        base = set(repo.snapshots.header(plan.base_full).packs)
    return base | orphans, orphans


def _tree_or_none(repo, sid: str, warnings: list[str]) -> list[dict] | None:
    """A parent's tree, or None with a warning when it is damaged: the backup then reads every
    file again instead of failing (damage stays local; verify names the tree)."""
    try:
        return repo.snapshots.load(sid).tree
    except IntegrityError as exc:
        warnings.append(f"{exc.message} Every file is read again for this backup.")
        return None


def scan_for_plan(repo, plan: BackupPlan) -> ScanResult:
    previous: dict[str, dict] = {}
    can_reuse = None
    warnings: list[str] = []
    if plan.type != "full":
        chain = [s for s in repo.snapshots.all() if s.chain == plan.chain and _same_source(s, plan.source, plan.host)]
        tree = _tree_or_none(repo, chain[-1].id, warnings) if chain else None
        previous = {e["path"]: e for e in tree or () if e.get("type") == "file"}
        if plan.type == "differential" and tree is not None and chain[-1].id != plan.base_full:
            base = _tree_or_none(repo, plan.base_full, warnings) or []
            base_chunks = {c for e in base for c in e.get("chunks", ())}
            can_reuse = lambda e: all(c in base_chunks for c in e["chunks"])  # noqa: E731
    scan = scan_workspace(plan.source, plan.excludes, previous, can_reuse)
    scan.warnings[:0] = warnings
    return scan


class _Packer:
    """Shared state of one store step: known chunks, the open pack, uploads in flight.

    On a backend that takes streamed objects (local disk), blobs are written to the open pack's
    temporary object as they are added and a full pack is committed by the thread that filled
    it; otherwise a full pack is joined in memory and uploaded on ``connections`` threads.
    """

    def __init__(self, repo, plan: BackupPlan, known: set[str], connections: int):
        self.repo = repo
        self.backend = repo.backend
        self.codec = Codec(repo.config.compression_level)
        self.pack_size = repo.config.pack_size
        self.known = known
        self.lock = threading.Lock()
        self.run = plan.run
        self.open_sink = sink_for(repo.backend)
        self.writer: PackWriter | None = self._new_writer()
        self.index_writer = IndexWriter(repo.backend, plan.run, plan.chain)
        self.uploads = ThreadPoolExecutor(connections, thread_name_prefix="bf-upload")
        # Each pack in flight holds pack_size bytes; this bound is most of the backup's memory.
        self.in_flight = threading.Semaphore(connections)
        self.futures = []
        self.packs: list[str] = []
        self.new_chunks = 0
        self.new_raw = 0
        self.new_stored = 0
        self.broken = False

    def _new_writer(self) -> PackWriter:
        return PackWriter(self.run, self.open_sink() if self.open_sink else None)

    def add(self, cid: str, data) -> None:
        with self.lock:
            if cid in self.known:
                return
            self.known.add(cid)
        stored, flags = self.codec.encode(data)
        with self.lock:
            try:
                self.writer.add(cid, stored, len(data), flags)
            except BaseException:
                self.broken = True  # the open pack lost a write: drop it, never ship it
                raise
            self.new_chunks += 1
            self.new_raw += len(data)
            if len(self.writer) < self.pack_size:
                return
            full, self.writer = self.writer, self._new_writer()
        self._ship(full)

    def _ship(self, writer: PackWriter) -> None:
        if self.open_sink:
            pack_id, _, blobs = writer.finish()  # written already; this commits it
            with self.lock:
                self.new_stored += len(writer)
            self._indexed(pack_id, blobs)
            return
        self.in_flight.acquire()
        pack_id, data, blobs = writer.finish()
        with self.lock:
            self.new_stored += len(data)
        self.futures.append(self.uploads.submit(self._upload, pack_id, data, blobs))

    def _upload(self, pack_id: str, data: bytes, blobs: list[list]) -> None:
        try:
            self.backend.save(pack_name(pack_id), data)
            self._indexed(pack_id, blobs)
        finally:
            self.in_flight.release()

    def _indexed(self, pack_id: str, blobs: list[list]) -> None:
        self.repo.index.add_pack(pack_id, self.index_writer.run, blobs)
        self.index_writer.add(pack_id, blobs)
        with self.lock:
            self.packs.append(pack_id)

    def finish(self) -> None:
        """Ship the last pack, wait for every upload, write the remaining index entries."""
        try:
            if self.writer.count and not self.broken:
                last, self.writer = self.writer, None
                self._ship(last)
            for f in self.futures:
                f.result()
        finally:
            if self.writer is not None:
                self.writer.abort()  # empty, or left unfinished by a failure
                self.writer = None
            self.uploads.shutdown(wait=True)
            # Whatever landed is indexed even when the step fails, so a retry reuses it.
            self.index_writer.flush()


def _read_file(path: str, entry: dict, chunker: Chunker, packer: _Packer) -> tuple[list[str], str, int]:
    """Chunk and store one file; (chunk ids, sha256, bytes read). Raises _Changed or OSError."""
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if st.st_size != entry["size"] or st.st_mtime_ns != entry["mtime_ns"]:
            entry.update(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino)
        chunks: list[str] = []
        first = None
        whole = None
        read = 0
        streaming = st.st_size >= chunker.window()  # else the views last the whole file
        for piece in chunker.cut_file(f, st.st_size):
            cid = hashlib.sha256(piece).hexdigest()
            # The whole-file hash is only needed when a file has more than one chunk; a
            # one-chunk file's sha256 is its chunk id, so small files are hashed once.
            if whole is not None:
                whole.update(piece)
            elif first is None:
                first = bytes(piece) if streaming else piece
            else:
                whole = hashlib.sha256(first)
                whole.update(piece)
                first = None
            packer.add(cid, piece)
            chunks.append(cid)
            read += len(piece)
        after = os.fstat(f.fileno())
    if after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns or read != st.st_size:
        raise _Changed()
    sha = chunks[0] if len(chunks) == 1 else (whole.hexdigest() if whole else EMPTY_SHA256)
    return chunks, sha, read


class _Changed(Exception):
    pass


def store_files(repo, plan: BackupPlan, scan: ScanResult, progress: Progress | None = None,
                connections: int | None = None, workers: int | None = None) -> StoreResult:
    started = time.monotonic()
    if connections is None:
        connections = 1 if repo.is_local else 4  # one local write runs while the next pack fills
    packer = _Packer(repo, plan, set(), connections)
    recovered = recover_unindexed_packs(repo, plan, packer.index_writer)
    allowed, orphans = _allowed_packs(repo, plan)
    if allowed:
        packer.known.update(repo.index.chunks_in_packs(allowed))
    local = threading.local()
    warnings = list(scan.warnings)
    done = {"files": 0, "bytes": 0}
    done_lock = threading.Lock()

    def work(i: int) -> None:
        entry = scan.entries[i]
        chunker = getattr(local, "chunker", None)
        if chunker is None:
            chunker = local.chunker = Chunker(repo.config.chunker)
        path = os.path.join(scan.source, entry["path"])
        for attempt in range(3):
            try:
                chunks, sha, n = _read_file(path, entry, chunker, packer)
                entry["chunks"], entry["sha256"] = chunks, sha
                break
            except _Changed:
                continue
            except FileNotFoundError:
                warnings.append(f"{entry['path']} vanished while it was read; not backed up")
                entry["_drop"] = True
                return
            except OSError as exc:
                warnings.append(f"{entry['path']} could not be read ({exc.strerror}); not backed up")
                entry["_drop"] = True
                return
        else:
            warnings.append(f"{entry['path']} kept changing while it was read; not backed up")
            entry["_drop"] = True
            return
        with done_lock:
            done["files"] += 1
            done["bytes"] += n
            if progress:
                progress(done["files"], done["bytes"])

    # One reader per core: hashing, chunking and compressing release the GIL, and a third
    # thread bought no speed on 2 cores but cost 15 MiB (benchmark workspace).
    nworkers = workers or os.cpu_count() or 2
    # A bounded number of files in flight, not one future per file up front (18,000 futures
    # held 6.6 MiB on the benchmark workspace). A slot frees when any file is done: waiting for
    # the oldest instead left a core idle a fifth of the time behind one large file.
    slots = threading.BoundedSemaphore(nworkers * 8)
    failed: list[BaseException] = []

    def finished(future) -> None:
        if future.exception() is not None and not failed:
            failed.append(future.exception())
        slots.release()

    try:
        with ThreadPoolExecutor(nworkers, thread_name_prefix="bf-read") as pool:
            for i in scan.to_read:
                slots.acquire()
                if failed:
                    break
                pool.submit(work, i).add_done_callback(finished)
        if failed:
            raise failed[0]
    finally:
        packer.finish()

    entries = [e for e in scan.entries if not e.pop("_drop", False)]
    used_orphans = set()
    if orphans:
        needed = {c for e in entries for c in e.get("chunks", ())}
        for cid in needed:
            for loc in repo.index.locations(cid):
                if loc.pack in orphans:
                    used_orphans.add(loc.pack)
    files = [e for e in entries if e["type"] in ("file", "hardlink")]
    total = sum(e.get("size", 0) for e in files if e["type"] == "file")
    stats = {
        "files": len(files),
        "dirs": sum(1 for e in entries if e["type"] == "dir"),
        "symlinks": sum(1 for e in entries if e["type"] == "symlink"),
        "bytes_total": total,
        "files_read": done["files"],
        "bytes_read": done["bytes"],
        "chunks_added": packer.new_chunks,
        "bytes_new": packer.new_raw,
        "bytes_added": packer.new_stored,
        "packs_added": len(packer.packs),
        "packs_recovered": recovered,
        "dedup_ratio": round(total / packer.new_raw, 3) if packer.new_raw else None,
        "compression_ratio": round(packer.new_raw / packer.new_stored, 3) if packer.new_stored else None,
        "store_seconds": round(time.monotonic() - started, 3),
    }
    return StoreResult(entries, sorted(set(packer.packs) | used_orphans), stats, warnings)


def commit_snapshot(repo, plan: BackupPlan, stored: StoreResult) -> Snapshot:
    stats = dict(stored.stats)
    stats["warnings"] = len(stored.warnings)
    snap = Snapshot(
        type=plan.type, run=plan.run, chain=plan.chain, time=datetime.now(timezone.utc).isoformat(),
        host=plan.host, source=plan.source, parent=plan.parent, base_full=plan.base_full,
        tags=plan.tags, description=plan.description, author=plan.author, stats=stats,
        packs=stored.packs, tree=stored.entries,
    )
    repo.snapshots.save(snap)
    locks.release(repo.backend, plan.run)
    return snap


def abandon(repo, plan: BackupPlan) -> None:
    """A failed run: release its lock so its packs can be adopted by the next run."""
    locks.release(repo.backend, plan.run)
