"""Reading the files of one backup run into chunks (restic's fileSaver).

``FileSaver`` reads the files a scan marked on ``workers`` threads; each thread keeps its own
chunker (and read window), hashes the chunks and hands them to the ``PackSaver``. What the
threads share (counts, warnings, what could not be read) are fields guarded by one lock.

- A file that changes while it is read is read again, at most ``ATTEMPTS`` times; the last
  time only the size it had when opened is read, and what was read is kept, marked
  ``changed_while_read`` (docs/FORMAT.md): for a file that only grows, such as an active log,
  that is a consistent prefix. restic and borg keep what they read too.
- A sparse file is not read where it has holes of at least the largest chunk (SEEK_HOLE and
  SEEK_DATA): each such run of zeros becomes chunks of zeros of the largest chunk size, which
  all dedup to one chunk. Only files whose allocated blocks fall that short of their size are
  asked, so a dense file costs no extra system call.
- A file that cannot be read (permissions, I/O error) is left out and named in ``missing``:
  the snapshot is incomplete. One that vanished after the scan is only a warning.
- Files are opened from their folder's descriptor, and folders are reached from the source
  one component at a time without following a symlink (``_Folders``), as the scan walks: a
  folder swapped for a symlink after the scan never leads a read outside the source (a
  backup run as root would otherwise store whatever the symlink points at).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from functools import lru_cache
from io import FileIO
from typing import Any, Callable, Iterable, Iterator

from storage.objects import EMPTY_SHA256, Chunker, ChunkerParams
from storage.repository.backup_report import Missing
from storage.repository.pack_saver import PackSaver
from storage.snapshots.names import shown
from storage.snapshots.scan import unreadable_reason

Progress = Callable[[int, int], None]  # (files done, bytes done)
ATTEMPTS = 3


@dataclass
class FileRead:
    """One read of one file: its chunks, whole-content sha256, bytes read, the stat taken when
    it was opened, and whether the file changed while it was read."""

    chunks: list[str]
    sha256: str
    size: int
    st: os.stat_result
    changed: bool


class FileSaver:
    def __init__(self, params: ChunkerParams, packer: PackSaver, source: str, progress: Progress | None = None):
        self.params = params
        self.packer = packer
        self.source = source
        self.progress = progress
        self.lock = threading.Lock()
        self.files = 0
        self.bytes = 0
        self.warnings: list[str] = []
        self.missing: list[Missing] = []
        self.dropped: set[int] = set()
        self._folders = _Folders(source)
        self._failed: list[BaseException] = []

    def save_all(self, entries: list[dict[str, Any]], to_read: Iterable[int], workers: int) -> None:
        """Read ``entries[i]`` for each ``i`` of ``to_read``; the first unexpected error stops
        the step and is raised once the threads have stopped."""
        # Each thread takes the next file itself: a feeding thread and a future per file woke
        # two threads per file (19,850 small files: a fifth of the kernel's time was switching).
        todo = iter(list(to_read))
        threads = [threading.Thread(target=self._work, args=(entries, todo), name=f"bf-read-{n}", daemon=True)
                   for n in range(workers)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException:
            self._failed.append(KeyboardInterrupt())  # stops the threads at their next file
            for t in threads:
                if t.is_alive():
                    t.join()
            raise
        finally:
            self._folders.close()
        if self._failed:
            raise self._failed[0]

    def _work(self, entries: list[dict[str, Any]], todo: Iterator[int]) -> None:
        try:
            chunker = Chunker(self.params)  # this thread's, with its read window
            for i in todo:  # a list iterator hands each index to one thread (under the GIL)
                if self._failed:
                    return
                self.save(entries, i, chunker)
        except BaseException as exc:
            self._failed.append(exc)

    def save(self, entries: list[dict[str, Any]], i: int, chunker: Chunker) -> None:
        """Read one file entry with this thread's ``chunker`` and fill in its chunks and
        sha256 (or drop it with a warning)."""
        entry = entries[i]
        try:
            got = self._read_stable(entry["path"], chunker)
        except FileNotFoundError:
            self._drop(i, f"{shown(entry['path'])} vanished while it was read; not backed up")
            return
        except _Replaced as exc:
            self._drop(i, f"{shown(entry['path'])} was replaced by {exc} after the scan; not backed up")
            return
        except NotADirectoryError:
            self._drop(i, f"a folder above {shown(entry['path'])} was replaced by a file or a symlink after "
                       "the scan; not backed up")
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._drop(i, f"{shown(entry['path'])} was replaced by a symlink after the scan; not backed up")
                return
            reason = unreadable_reason(exc)
            self._drop(i, f"{shown(entry['path'])} could not be read ({reason}); not backed up",
                       Missing(path=shown(entry["path"]), reason=reason))
            return
        st = got.st
        entry.update(size=got.size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino,
                     chunks=got.chunks, sha256=got.sha256)
        with self.lock:
            if got.changed:
                entry["changed_while_read"] = True
                self.warnings.append(f"{shown(entry['path'])} kept changing while it was read; "
                                     f"stored the {got.size} bytes read")
            self.files += 1
            self.bytes += got.size
            if self.progress:
                self.progress(self.files, self.bytes)

    def _drop(self, i: int, warning: str, missing: Missing | None = None) -> None:
        with self.lock:
            self.dropped.add(i)
            self.warnings.append(warning)
            if missing is not None:
                self.missing.append(missing)

    def _read_stable(self, rel: str, chunker: Chunker) -> FileRead:
        for attempt in range(1, ATTEMPTS + 1):
            got = read_file(self._folders.open_file(rel), chunker, self.packer, bounded=attempt == ATTEMPTS)
            if not got.changed:
                break
        return got


def read_file(fd: int, chunker: Chunker, packer: PackSaver, bounded: bool = False) -> FileRead:
    """Chunk and store one opened file (``_Folders.open_file``), closing it. ``bounded``
    reads no more than the size it had when opened."""
    with open(fd, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Replaced("a directory" if stat.S_ISDIR(st.st_mode) else "a special file")
        zero = None
        if _sparse(st, chunker.params):
            holes = _holes(f.fileno(), st.st_size, chunker.params.max_size)
            pieces: Iterator[memoryview] = _sparse_pieces(f, st.st_size, holes, chunker)
            zview = _zero_chunk(chunker.params.max_size)
            zsha = hashlib.sha256(zview).digest()
            zero = (zview, packer.sealer.id_of_sha256(zsha), zsha.hex())
            streaming = True
        else:
            pieces = chunker.cut_file(_Bounded(f, st.st_size) if bounded else f, st.st_size)
            streaming = st.st_size >= chunker.window()  # else the views last the whole file
        chunks, sha, read = _store(pieces, packer, streaming, zero)
        after = os.fstat(f.fileno())
    changed = after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns or read != st.st_size
    return FileRead(chunks, sha, read, st, changed)


def _store(pieces: Iterator[memoryview], packer: PackSaver, streaming: bool,
           zero: tuple[memoryview, str, str] | None) -> tuple[list[str], str, int]:
    """Hash and store each piece; (chunk ids, sha256 of the whole, bytes)."""
    chunks: list[str] = []
    first = None
    whole = None
    read = 0
    id_of_sha256 = packer.sealer.id_of_sha256
    one = EMPTY_SHA256
    for piece in pieces:
        if zero is not None and piece is zero[0]:
            cid, one = zero[1], zero[2]
        else:
            digest = hashlib.sha256(piece).digest()
            cid, one = id_of_sha256(digest), digest.hex()
        # The whole-file hash is only needed when a file has more than one chunk; a
        # one-chunk file's sha256 is its chunk's, so small files are hashed once.
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
    sha = one if len(chunks) == 1 else (whole.hexdigest() if whole else EMPTY_SHA256)
    return chunks, sha, read


# A file is opened without following a symlink and without waiting on a FIFO: what the scan
# saw as a file may have been replaced since, and reading /dev/zero or a FIFO would never end.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Folders:
    """Descriptors of the source's folders, each reached from the source one component at a
    time without following a symlink. Each reader thread keeps the folder it read last open
    (files come in scan order, so mostly the same one); every descriptor is closed by
    :meth:`close`."""

    def __init__(self, source: str):
        self.source = source
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[int] = set()

    def open_file(self, rel: str) -> int:
        folder, _, name = rel.rpartition("/")
        held = getattr(self._local, "held", None)
        if held is None or held[0] != folder:
            fd = self._walk(folder)
            if held is not None:
                self._release(held[1])
            held = self._local.held = (folder, fd)
        return os.open(name, _OPEN_FLAGS, dir_fd=held[1])

    def _walk(self, folder: str) -> int:
        fd = os.open(self.source, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the source itself may be a symlink
        try:
            for part in folder.split("/") if folder else ():
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # now a symlink or a file
                raise NotADirectoryError(errno.ENOTDIR, f"{folder} is no longer a folder") from None
            raise
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._open.add(fd)
        return fd

    def _release(self, fd: int) -> None:
        with self._lock:
            self._open.discard(fd)
        os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._open:
                os.close(fd)
            self._open.clear()
        self._local = threading.local()


class _Replaced(Exception):
    """What the scan saw as a regular file is now something else (the message says what)."""


class _Bounded:
    """A file read no further than ``limit`` bytes from its current position."""

    def __init__(self, f: FileIO, limit: int):
        self.f = f
        self.left = limit

    def readinto(self, view: memoryview) -> int:
        if self.left <= 0:
            return 0
        n = self.f.readinto(view[:self.left] if len(view) > self.left else view) or 0
        self.left -= n
        return n


def _sparse(st: os.stat_result, params: ChunkerParams) -> bool:
    """True when the file lacks at least one largest chunk's worth of allocated blocks."""
    return st.st_blocks * 512 + params.max_size <= st.st_size


def _holes(fd: int, size: int, min_hole: int) -> list[tuple[int, int]]:
    """The holes of at least ``min_hole`` bytes in the first ``size`` bytes, as (start, end).
    A file system that cannot say (or a file that shrank meanwhile) gives fewer or none: the
    file is then read, which is only slower."""
    holes = []
    pos = 0
    try:
        while pos < size:
            start = min(os.lseek(fd, pos, os.SEEK_HOLE), size)
            end = min(_next_data(fd, start, size), size)
            if end - start >= min_hole:
                holes.append((start, end))
            pos = max(end, pos + 1)
    except OSError:
        pass
    return holes


def _next_data(fd: int, pos: int, size: int) -> int:
    if pos >= size:
        return size
    try:
        return os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # only a hole up to the end of the file
            return size
        raise


def _sparse_pieces(f: FileIO, size: int, holes: list[tuple[int, int]], chunker: Chunker) -> Iterator[memoryview]:
    pos = 0
    zero = _zero_chunk(chunker.params.max_size)
    for start, end in holes + [(size, size)]:
        if start > pos:
            f.seek(pos)
            yield from chunker.cut_stream(_Bounded(f, start - pos))
        n = end - start
        for _ in range(n // len(zero)):
            yield zero
        if n % len(zero):
            yield zero[:n % len(zero)]
        pos = end


@lru_cache(maxsize=4)
def _zero_chunk(size: int) -> memoryview:
    """A chunk of ``size`` zero bytes (the pages stay the shared zero page)."""
    return memoryview(bytes(size))
