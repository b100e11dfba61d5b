"""Local-disk specifics: atomic, exclusive writes.

fsspec's local ``pipe_file`` writes in place, so a killed process could leave half an object
under its final name. Here every object is written to a temporary file in the same folder and
then hard-linked into place: ``link`` fails if the name exists (exclusive create) and the
object appears whole or not at all. On a filesystem without hard links (FAT, exFAT, some SMB
mounts) the file is renamed into place after a check that the name is free: still whole or
not at all, and exclusive except against a writer racing for the same name, who (names being
content hashes, ``config`` being written once by init) writes the same bytes.

Durable before visible, as restic and borg are: an object's data is flushed to disk (fsync)
before it gets its name, and the folder holding the name is flushed after. A snapshot manifest
is written only after every pack, index and tree it needs, so after a power cut a snapshot
that exists can be restored. Filesystems that cannot sync (some network mounts) are written
to without it.
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import time
import uuid

from storage.backend.base import HOST_TAG, TemporaryInfo, display_url
from storage.backend.fsspec_backend import FsspecBackend
from storage.errors import NO_HARD_LINKS, AlreadyExists, BackupError
from storage.layout import DATA


_CANNOT_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
def _writer_of(filename: str) -> tuple[str | None, int | None]:
    parts = filename[len(".tmp-"):].split("-")
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


def _sync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _CANNOT_SYNC:
            raise


def _sync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a platform or filesystem that cannot open folders: nothing to flush
    try:
        _sync(fd)
    finally:
        os.close(fd)


def _make_folder(folder: str) -> None:
    """Create ``folder`` (and parents) if missing, durably: a new folder's name is flushed."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    _make_folder(parent)
    try:
        os.mkdir(folder)
    except FileExistsError:
        return
    _sync_folder(parent)


def _place(tmp: str, path: str) -> bool:
    """Give the finished, synced file ``tmp`` the name ``path`` durably; False when the name
    is taken. ``tmp`` may remain afterwards (the caller removes it)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            return False
        os.replace(tmp, path)
    _sync_folder(os.path.dirname(path))
    return True


class LocalBackend(FsspecBackend):
    host_tag = HOST_TAG  # the writer tag in this host's temporary-file names

    def _write(self, path: str, data: bytes) -> bool:
        """Write ``data`` under ``path``; False when another writer's object got there first
        (save() then compares its content with ours)."""
        sink = _FileSink(self, os.path.dirname(path))
        try:
            sink.write(data)
            return sink.place(path)
        finally:
            sink.abort()

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        path = self._path(name)
        try:
            if exclusive and os.path.exists(path):
                self._check_same(name, data)
                return
            if not exclusive and os.path.exists(path):
                os.unlink(path)
            if not self._write(path, data) and exclusive:
                # Lost a race: the name now holds someone's object; it must be ours byte for byte
                # (comparing sizes alone let two different repository configs both "succeed").
                self._check_same(name, data)
        except BackupError:
            raise
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def open_sink(self) -> "_FileSink":
        """Stream a pack straight into a temporary file: no copy of it is held in memory, and
        incompressible chunks go from the read buffer to the page cache without one either."""
        return _FileSink(self)

    def temporaries(self) -> list["TemporaryInfo"]:
        """The hidden temporary files in the repository: writes in progress, and those a
        process killed half-way left behind. Each names its writer (host tag and PID) and
        age, so housekeeping can tell the two apart (storage/repository/leftovers.py)."""
        found = []
        now = time.time()
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                if not f.startswith(".tmp-"):
                    continue
                path = os.path.join(dirpath, f)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                host, pid = _writer_of(f)
                found.append(TemporaryInfo(os.path.relpath(path, self.root).replace(os.sep, "/"), st.st_size,
                                           max(0.0, now - st.st_mtime), host, pid))
        return found

    def remove_temporary(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def load_into(self, name: str, offset: int, buffer) -> int:
        """Read into the caller's buffer (storage.backend.load_into): a restore reuses one per
        thread, where a fresh 4 MiB buffer per read is mmapped and page-faulted in anew."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
            try:
                view = memoryview(buffer).cast("B")
                got = 0
                while got < len(view) and (n := os.preadv(fd, [view[got:]], offset + got)):
                    got += n
                return got
            finally:
                os.close(fd)
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def list(self, prefix: str = ""):
        for info in super().list(prefix):
            if not info.name.rsplit("/", 1)[-1].startswith(".tmp-"):
                yield info


class _FileSink:
    """A hidden temporary file in ``folder`` (``data/`` for packs, whose final folder is known
    only once they are hashed), synced and linked into place when finished."""

    def __init__(self, backend: LocalBackend, folder: str | None = None):
        self.backend = backend
        folder = folder or backend._path(DATA)
        self.where = os.path.relpath(folder, backend.root).replace(os.sep, "/") + "/"
        try:
            _make_folder(folder)
            self.tmp = os.path.join(folder, f".tmp-{HOST_TAG}-{os.getpid()}-{uuid.uuid4().hex}")
            self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except Exception as exc:
            raise backend._translate(exc, self.where) from exc

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except Exception as exc:
            self.abort()
            raise self.backend._translate(exc, self.where) from exc

    def sha256(self) -> str:
        """Read back from the page cache: hashing here, outside the packer's lock, let the
        other reader thread go on writing (hashing as blobs were written serialised it)."""
        h = hashlib.sha256()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        offset = 0
        try:
            while n := os.preadv(self.fd, [buf], offset):
                h.update(view[:n])
                offset += n
        except Exception as exc:
            raise self.backend._translate(exc, self.where) from exc
        return h.hexdigest()

    def place(self, path: str) -> bool:
        """Flush the file and give it the name ``path`` durably; False when the name is taken."""
        _sync(self.fd)
        os.close(self.fd)
        self.fd = -1
        _make_folder(os.path.dirname(path))
        return _place(self.tmp, path)

    def commit(self, name: str) -> None:
        path = self.backend._path(name)
        try:
            if not self.place(path) and not filecmp.cmp(self.tmp, path, shallow=False):
                raise AlreadyExists(f"{name} already exists in {display_url(self.backend.url)} with other content.")
        except BackupError:
            raise
        except Exception as exc:
            raise self.backend._translate(exc, name) from exc
        finally:
            self.abort()

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass
