"""Restore a snapshot (or selected paths of it) into a target directory.

Safety first: every entry is checked before anything is written (restore_tree: an absolute
path, a ``..`` component or an entry below a symlink of the snapshot is refused with
PathEscape; any other malformed entry with IntegrityError), and every folder, file and link is
reached through folder descriptors without following a symlink (restore_target). Every chunk's
sha256 is checked before its bytes reach a file.

Damage stays local: a file whose data is damaged or missing is left out (a file already in the
target keeps its old content), every other file is restored, and the result names each file
left out; the flow then ends with RestoreIncomplete (exit 13).

Speed: restore is bound by the kernel's file creation, so packs are processed on several
threads; each pack is read once (whole, or in coalesced ranges when little of it is needed),
and a one-chunk file is created, written, chmod-ed and timestamped through one descriptor.
The workers are in restore_files: planner, pack fetcher, file writer.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from storage.errors import NO_SYMLINKS, InvalidInput
from storage.repository.restore_files import (
    ChunkLocator, FileWriter, PackFetcher, Progress, RestorePlanner, RestoreWork,
)
from storage.repository.restore_target import Target, target_error
from storage.repository.restore_tree import check_path, select_entries
from storage.snapshots import Snapshot, TreeEntry, shown

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository

__all__ = ["ChunkLocator", "RestorePlan", "RestoreResult", "check_path", "plan_restore",
           "restore_snapshot", "select_entries"]


@dataclass
class RestorePlan:
    snapshot: str
    target: str
    create: list[str] = field(default_factory=list)
    overwrite: list[str] = field(default_factory=list)  # a restore adds and overwrites, never deletes
    # existing files already as the snapshot has them (content, mode, mtime): nothing changes
    unchanged: list[str] = field(default_factory=list)
    bytes: int = 0
    files: int = 0
    target_exists: bool = False
    target_empty: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RestoreResult:
    snapshot_id: str
    target: str
    files: int
    bytes: int
    seconds: float
    hardlinks_copied: int = 0
    symlinks_skipped: list[str] = field(default_factory=list)
    not_restored: dict[str, str] = field(default_factory=dict)  # path -> why

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.not_restored:
            del d["not_restored"]  # the result of a complete restore keeps its established keys
        return d


def _prepare_target(target: str) -> str:
    t = os.path.abspath(os.path.expanduser(target))
    if os.path.lexists(t) and not os.path.isdir(t):
        raise InvalidInput(f"The restore target {target} exists and is not a directory; choose a directory.")
    above = os.path.dirname(t)
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise InvalidInput(f"The restore target {target} cannot be made: {above} is a file, not a directory.")
    return t


def plan_restore(snap: Snapshot, target: str, include: list[str] | None = None) -> RestorePlan:
    t = _prepare_target(target)
    entries = select_entries(snap, include)
    plan = RestorePlan(snapshot=snap.id, target=t, target_exists=os.path.isdir(t))
    plan.target_empty = not plan.target_exists or not any(True for _ in os.scandir(t))
    for e in entries:
        if e["type"] not in ("file", "hardlink", "symlink"):
            continue
        plan.files += 1
        plan.bytes += e.get("size", 0) if e["type"] == "file" else 0
        where = os.path.join(t, e["path"])
        if plan.target_empty or not os.path.lexists(where):
            plan.create.append(e["path"])
        elif already_there(where, e):
            plan.unchanged.append(e["path"])
        else:
            plan.overwrite.append(e["path"])
    return plan


def already_there(path: str, e: TreeEntry) -> bool:
    """Whether ``path`` is already what restoring ``e`` would make of it: the same symlink
    target, or a file of the same mode, mtime, size and content (read and hashed only when
    everything else matches, so a restore over a changed tree reads little)."""
    try:
        st = os.lstat(path)
        if e["type"] == "symlink":
            return stat.S_ISLNK(st.st_mode) and os.readlink(path) == e.get("target")
        if e["type"] != "file" or not stat.S_ISREG(st.st_mode) or "sha256" not in e:
            return False
        if (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size) != (e["mode"], e["mtime_ns"], e.get("size")):
            return False
        return _content_hash(path) == e["sha256"]
    except OSError:
        return False


def _content_hash(path: str) -> str | None:
    """sha256 of the regular file at ``path``, never following a symlink or waiting on a FIFO
    swapped in since it was looked at."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        while block := f.read(1 << 20):
            digest.update(block)
        return digest.hexdigest()


def _make_folders(target: Target, wanted: set[str]) -> None:
    """Make these folders (and their parents), parents first, before any file is written."""
    wanted.discard("")
    try:
        for rel in sorted(wanted):
            target.ensure(rel)
    except OSError as exc:
        raise target_error(exc, target.path) or InvalidInput(
            f"A folder in the restore target {target.path} cannot be made ({exc.strerror}).") from None


def _parents(work: RestoreWork) -> set[str]:
    wanted: set[str] = set()
    for group in (work.files, work.hardlinks, work.symlinks):
        wanted.update(e["path"].rpartition("/")[0] for e in group)
    return wanted


def _write_files(repo: Repository, work: RestoreWork, writer: FileWriter, workers: int, sweep: bool) -> None:
    fetcher = PackFetcher(repo, work, writer)
    try:
        writer.prepare(sweep)
        with ThreadPoolExecutor(workers, thread_name_prefix="bf-restore") as pool:
            futures = [pool.submit(fetcher.fetch, p) for p in work.by_pack]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                writer.stop = True
                raise
    finally:
        writer.remove_unfinished()


class LinksAndMetadata:
    """The last pass, once every file is written: hard links, symlinks, then folder modes and
    times, deepest first (writing inside a folder changes its time)."""

    def __init__(self, target: Target, work: RestoreWork, failed: dict[str, str]):
        self.target, self.work, self.failed = target, work, failed
        self.copied = 0
        self.skipped_symlinks: list[str] = []

    def run(self) -> None:
        try:
            for e in self.work.hardlinks:
                self._entry(e, self._hardlink)
            for e in self.work.symlinks:
                self._entry(e, self._symlink)
            for e in sorted(self.work.dirs, key=lambda e: e["path"].count("/"), reverse=True):
                self._entry(e, lambda e: self.target.finish_dir(e["path"], e["mode"], e["mtime_ns"]))
        except OSError as exc:
            raise (target_error(exc, self.target.path) or exc) from None

    def _entry(self, e: TreeEntry, make) -> None:
        try:
            make(e)
        except (InvalidInput, IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError) as exc:
            why = exc.message if isinstance(exc, InvalidInput) else exc.strerror
            self.failed[e["path"]] = f"it could not be made ({why})"

    def _hardlink(self, e: dict) -> None:
        if e["link"] in self.failed:
            self.failed[e["path"]] = f"it is a hard link of {shown(e['link'])}, which could not be restored"
        elif not self.target.link(e["link"], e["path"]):
            self.copied += 1  # a target without hard links (FAT, exFAT, some SMB mounts): a copy

    def _symlink(self, e: dict) -> None:
        try:
            self.target.symlink(e["target"], e["path"], e["mtime_ns"])
        except OSError as exc:
            if exc.errno not in NO_SYMLINKS:
                raise
            # A target without symlinks (FAT, exFAT): a link has no content to lose; it is named
            # in the result so the caller can tell the person restoring.
            self.skipped_symlinks.append(e["path"])


def default_workers(local: bool) -> int:
    """Packs fetched and written at once. In the cloud 4, to hide latency. On local disk the
    work is CPU (decrypt, decompress, hash, the kernel's file creation) and threads past the
    processors only contend for the GIL: with 4 on 2 cores a restore of the 1 GiB benchmark
    workspace took 14 % more CPU and 12 % more time than with 2 (paired runs)."""
    if not local:
        return 4
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, min(4, cpus))  # two at least: one reads while the other writes


def restore_snapshot(repo: Repository, snap: Snapshot, target: str, include: list[str] | None = None,
                     progress: Progress | None = None, workers: int = 4) -> RestoreResult:
    started = time.monotonic()
    t = _prepare_target(target)
    entries = select_entries(snap, include)
    fresh = not os.path.isdir(t) or not any(True for _ in os.scandir(t))
    folders = Target(t)
    try:
        # Making 2,000 folders is the kernel's work and planning is Python's: they overlap.
        with ThreadPoolExecutor(1, thread_name_prefix="bf-folders") as early:
            made = early.submit(_make_folders, folders, {e["path"] for e in entries if e["type"] == "dir"})
            work = RestorePlanner(ChunkLocator(repo, snap)).plan(snap, entries)
            made.result()
        _make_folders(folders, _parents(work))  # those that are no entry of their own (a selection)
        writer = FileWriter(folders, work.files, work.dests, progress)
        _write_files(repo, work, writer, workers, sweep=not fresh)
        failed = {**work.failed, **writer.not_restored()}
        last = LinksAndMetadata(folders, work, failed)
        last.run()
    finally:
        folders.close()
    restored = [e for e in work.files if e["path"] not in failed]
    return RestoreResult(
        snapshot_id=snap.id, target=t, files=len(restored) + sum(e["path"] not in failed for e in work.hardlinks),
        bytes=sum(e["size"] for e in restored), seconds=round(time.monotonic() - started, 3),
        hardlinks_copied=last.copied, symlinks_skipped=[shown(p) for p in last.skipped_symlinks],
        not_restored={shown(p): why for p, why in failed.items()})  # names readable in JSON and logs
