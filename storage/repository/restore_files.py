"""The workers that write a restore's files: a planner, a pack fetcher and a file writer (as in
restic's restorer: planner, fileRestorer, filesWriter).

- ``RestorePlanner`` turns the selected entries into work: files to write (a hard link whose
  source is not restored becomes a file), the chunks each needs at which offsets, grouped by
  the pack that holds them. A file whose chunks are not all stored, or do not add up to its
  size, is set aside as not restorable.
- ``PackFetcher`` reads each pack once, in coalesced ranges, and hands every chunk whose
  hash checks out to the writer; a damaged chunk or an unreadable pack fails only the files
  that need it.
- ``FileWriter`` creates, pre-sizes, writes and finishes files. A file of several chunks, and
  one whose name is already taken, is written under a temporary name (``.bf-restore-*``) in its
  folder and renamed into place when complete, so a file that cannot be restored leaves an
  older copy as it was, and no file is ever left at its name looking whole with data missing
  (not even by a killed restore); what was written of it is removed. The temporary name
  carries the host and process (``.bf-restore-<host>-<pid>-<random>``), so the next restore
  into a folder removes what a killed restore on this host left there. All-zero chunks
  are not written (the file was sized with ftruncate), so sparse files keep their holes.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from storage.backend import HOST_TAG, load_into
from storage.errors import IntegrityError, NotFound
from storage.layout import list_packs
from storage.repository.leftovers import pid_dead
from storage.objects import BlobLocation, pack_name, read_blob
from storage.repository.restore_target import WRITE, Target, split, target_error
from storage.snapshots import Snapshot, TreeEntry

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository

Progress = Callable[[int, int], None]
RANGE_GAP = 256 * 1024
MAX_RANGE = 4 * 1024 * 1024  # bounds what one restore thread holds


class ChunkLocator:
    """Picks a stored copy of each chunk: one in the snapshot's own chain while that pack
    exists, else any other pack that still holds it (the same judgement verify makes)."""

    def __init__(self, repo: Repository, snap: Snapshot):
        self.index = repo.index
        self.existing = set(list_packs(repo.backend))
        self.prefer = {p for s in repo.snapshots.all() if s.chain == snap.chain for p in s.packs}

    def locate(self, cid: str, path: str) -> BlobLocation:
        locs = self.index.locations(cid)
        if len(locs) == 1 and locs[0].pack in self.existing:
            return locs[0]  # the usual case, 20,000 times in a restore: no list to build
        locs = [loc for loc in locs if loc.pack in self.existing]
        if not locs:
            raise IntegrityError(
                f"{path} needs chunk {cid[:12]}, which the repository no longer holds; run `backupflow verify`.")
        for loc in locs:
            if loc.pack in self.prefer:
                return loc
        return locs[0]


@dataclass
class RestoreWork:
    """What the planner hands the writers."""

    files: list[TreeEntry] = field(default_factory=list)
    hardlinks: list[TreeEntry] = field(default_factory=list)
    symlinks: list[TreeEntry] = field(default_factory=list)
    dirs: list[TreeEntry] = field(default_factory=list)
    # chunk -> [(file number, offset)]
    dests: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    locs: dict[str, BlobLocation] = field(default_factory=dict)
    by_pack: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it was not restored


class RestorePlanner:
    def __init__(self, locator: ChunkLocator):
        self.locator = locator

    def plan(self, snap: Snapshot, entries: list[TreeEntry]) -> RestoreWork:
        work = RestoreWork()
        selected = {e["path"] for e in entries}
        by_path: dict[str, TreeEntry] = {}
        for e in entries:
            if e["type"] == "hardlink" and e["link"] not in selected:
                by_path = by_path or {x["path"]: x for x in snap.tree or ()}
                e = by_path[e["link"]] | {"path": e["path"]}
            getattr(work, e["type"] + "s").append(e)
        wanted, work.files = work.files, []
        for e in wanted:
            if self._place(work, e, len(work.files)):  # a file's number is its place in work.files
                work.files.append(e)
        for cid in work.dests:
            work.by_pack[work.locs[cid].pack].append(cid)
        return work

    def _place(self, work: RestoreWork, e: TreeEntry, n: int) -> bool:
        locs = work.locs
        try:
            placed = [locs[cid] if cid in locs else self._locate(work, cid, e["path"]) for cid in e["chunks"]]
        except IntegrityError:
            work.failed[e["path"]] = "a chunk of it is no longer in the repository"
            return False
        size = sum(loc.raw_length for loc in placed)
        if size != e["size"]:
            work.failed[e["path"]] = f"the snapshot says {e['size']} bytes but its chunks hold {size}"
            return False
        off = 0
        for cid, loc in zip(e["chunks"], placed, strict=True):
            work.dests[cid].append((n, off))
            off += loc.raw_length
        return True

    def _locate(self, work: RestoreWork, cid: str, path: str) -> BlobLocation:
        loc = work.locs[cid] = self.locator.locate(cid, path)
        return loc


def _all_zero(data) -> bool:
    """Whether ``data`` (bytes or a view) is all zeros; a view is copied only if it starts so."""
    head = bytes(data[:64])
    if head != bytes(len(head)):
        return False
    return (data if isinstance(data, bytes) else bytes(data)).count(0) == len(data)


def _write_all(fd: int, data: bytes, offset: int = 0) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMP_PREFIX = ".bf-restore-"


def sweep_dead_temporaries(dfd: int) -> int:
    """Remove the temporary files that restores on this host, whose process is gone (killed),
    left in the folder ``dfd``; returns how many. Names of other hosts, of live processes and
    anything that is not a plain file are left alone."""
    removed = 0
    with os.scandir(dfd) as entries:
        for entry in entries:
            owner = entry.name[len(TEMP_PREFIX):].split("-") if entry.name.startswith(TEMP_PREFIX) else []
            if len(owner) != 3 or owner[0] != HOST_TAG or not owner[1].isdigit():
                continue
            if int(owner[1]) == os.getpid() or not pid_dead(int(owner[1])):
                continue
            if entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.name, dir_fd=dfd)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


class FileWriter:
    """Writes the planned files (see the module docstring); fields are shared by the threads."""

    def __init__(self, target: Target, files: list[TreeEntry], dests: dict[str, list[tuple[int, int]]],
                 progress: Progress | None = None):
        self.target, self.files, self.dests, self.progress = target, files, dests, progress
        self.umask = _current_umask()
        self.folders = [split(e["path"])[0] for e in files]
        self.names = [""] * len(files)  # the name being written, once created
        self.mode_ok = [False] * len(files)
        self.remaining = [len(e["chunks"]) for e in files]
        self.finished = [False] * len(files)
        self.failed: dict[int, str] = {}
        self.files_done = self.bytes_done = 0
        self.stop = False  # set on an error of the whole target: the fetchers stop
        self.lock = threading.Lock()

    def _create(self, n: int, dfd: int, temporary: bool = False) -> int:
        """Create file ``n`` under its own name, or under a temporary one if that name is taken
        or ``temporary`` (a file written over time, so a killed restore leaves no file at its
        name that looks whole)."""
        name, mode = split(self.files[n]["path"])[1], self.files[n]["mode"]
        if not temporary:
            try:
                fd = os.open(name, WRITE | os.O_CREAT | os.O_EXCL, mode, dir_fd=dfd)
                self.mode_ok[n] = not (mode & self.umask)
                self.names[n] = name
                return fd
            except FileExistsError:
                pass
        name = f"{TEMP_PREFIX}{HOST_TAG}-{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(name, WRITE | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
        self.names[n] = name
        return fd

    def _complete(self, n: int, fd: int, dfd: int) -> None:
        e = self.files[n]
        if not self.mode_ok[n]:
            os.fchmod(fd, e["mode"])
        os.utime(fd, ns=(e["mtime_ns"], e["mtime_ns"]))
        final = split(e["path"])[1]
        name = self.names[n]
        assert name is not None  # created (prepare or the first chunk) before it completes
        if name != final:
            os.rename(name, final, src_dir_fd=dfd, dst_dir_fd=dfd)
            self.names[n] = final
        with self.lock:
            self.finished[n] = True
            self.files_done += 1

    def prepare(self, sweep: bool = True) -> None:
        """Create the empty files and pre-size those of several chunks (their holes stay holes).
        ``sweep``: first remove what killed restores left in the folders (not needed in a
        target that was empty: a listing of each of its 2,000 folders is time for nothing)."""
        for folder in sorted(set(self.folders)) if sweep else ():
            try:
                with self.target.folder(folder) as dfd:
                    sweep_dead_temporaries(dfd)
            except OSError:
                pass  # housekeeping: the folder's own errors are reported by its files
        for n, e in enumerate(self.files):
            if self.remaining[n] == 1:
                continue  # created when its chunk arrives
            try:
                with self.target.folder(self.folders[n]) as dfd:
                    fd = self._create(n, dfd, temporary=self.remaining[n] > 1)
                    try:
                        if self.remaining[n]:
                            os.ftruncate(fd, e["size"])
                        else:
                            self._complete(n, fd, dfd)
                    finally:
                        os.close(fd)
            except OSError as exc:
                self._os_failed(n, exc)

    def write(self, cid: str, data: bytes) -> None:
        """Write a checked chunk into every file that holds it."""
        zero = _all_zero(data)
        for n, off in self.dests[cid]:
            if n in self.failed:
                continue
            try:
                dfd = self.target.cached(self.folders[n])  # most folders: no context to enter
                if dfd is not None:
                    self._write(n, off, data, zero, dfd)
                else:
                    with self.target.folder(self.folders[n]) as dfd:
                        self._write(n, off, data, zero, dfd)
            except OSError as exc:
                self._os_failed(n, exc)
            with self.lock:
                self.bytes_done += len(data)
                if self.progress:
                    self.progress(self.files_done, self.bytes_done)

    def _write(self, n: int, off: int, data: bytes, zero: bool, dfd: int) -> None:
        if len(self.files[n]["chunks"]) == 1:
            self._write_whole(n, data, zero, dfd)
        else:
            self._write_part(n, off, data, zero, dfd)

    def _write_whole(self, n: int, data: bytes, zero: bool, dfd: int) -> None:
        fd = self._create(n, dfd)
        try:
            if zero:
                os.ftruncate(fd, len(data))
            else:
                _write_all(fd, data)
            self._complete(n, fd, dfd)
        finally:
            os.close(fd)

    def _write_part(self, n: int, off: int, data: bytes, zero: bool, dfd: int) -> None:
        name = self.names[n]
        assert name is not None  # a file of several chunks is created by prepare()
        fd = os.open(name, WRITE, dir_fd=dfd)
        try:
            if not zero:
                _write_all(fd, data, off)
            with self.lock:
                self.remaining[n] -= 1
                last = self.remaining[n] == 0 and n not in self.failed
            if last:
                self._complete(n, fd, dfd)
        finally:
            os.close(fd)

    def fail_chunk(self, cid: str, why: str) -> None:
        with self.lock:
            for n, _ in self.dests[cid]:
                self.failed.setdefault(n, why)

    def _os_failed(self, n: int, exc: OSError) -> None:
        whole = target_error(exc, self.target.path)
        if whole is not None:
            self.stop = True
            raise whole from None
        with self.lock:
            self.failed.setdefault(n, f"it could not be written ({exc.strerror or exc})")

    def remove_unfinished(self) -> None:
        """Remove what was written of every file that was not completed."""
        for n, name in enumerate(self.names):
            if name and not self.finished[n]:
                try:
                    with self.target.folder(self.folders[n]) as dfd:
                        os.unlink(name, dir_fd=dfd)
                except OSError:
                    pass

    def not_restored(self) -> dict[str, str]:
        return {self.files[n]["path"]: why for n, why in self.failed.items()}


class PackFetcher:
    """Reads packs and hands every checked chunk to the writer."""

    def __init__(self, repo: Repository, work: RestoreWork, writer: FileWriter):
        self.backend = repo.backend
        self.codec = repo.codec()
        self.work, self.writer = work, writer
        self._local = threading.local()

    def _read(self, pack: str, base: int, length: int) -> memoryview:
        """Bytes ``base``..``base+length`` of the pack (fewer at its end), in this thread's
        buffer: a fresh one per range is mmapped and page-faulted in anew (storage/allocator.py).
        Valid until this thread's next read."""
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) < length:
            buf = self._local.buf = bytearray(max(length, MAX_RANGE))
        view = memoryview(buf)[:length]
        return view[:load_into(self.backend, pack_name(pack), base, view)]

    def ranges(self, pack: str) -> list[tuple[int, int, list[str]]]:
        """Contiguous blobs are read together in ranges of at most MAX_RANGE, one range in
        memory at a time: few reads, bounded memory, whatever the pack size."""
        locs = self.work.locs
        ranges: list[tuple[int, int, list[str]]] = []
        for c in sorted(self.work.by_pack[pack], key=lambda c: locs[c].offset):
            loc = locs[c]
            if ranges:
                s0, e0, group = ranges[-1]
                if loc.offset - e0 <= RANGE_GAP and loc.offset + loc.length - s0 <= MAX_RANGE:
                    ranges[-1] = (s0, max(e0, loc.offset + loc.length), group)
                    group.append(c)
                    continue
            ranges.append((loc.offset, loc.offset + loc.length, [c]))
        return ranges

    def fetch(self, pack: str) -> None:
        for base, end, group in self.ranges(pack):
            if self.writer.stop:
                return
            try:
                data = self._read(pack, base, end - base)
            except (NotFound, IntegrityError):
                for c in group:
                    self.writer.fail_chunk(c, f"its data in pack {pack[:12]} cannot be read")
                continue
            for c in group:
                raw = self._checked(pack, c, data, base)
                if raw is not None:
                    self.writer.write(c, raw)

    def _checked(self, pack: str, cid: str, data: memoryview, base: int):
        """The checked chunk, a view of this thread's buffers (written before the next one)."""
        loc = self.work.locs[cid]
        try:
            return read_blob(self.codec, data[loc.offset - base: loc.offset - base + loc.length], loc, cid,
                             reuse=True)
        except IntegrityError:
            self.writer.fail_chunk(cid, f"chunk {cid[:12]} in pack {pack[:12]} is damaged")
            return None
