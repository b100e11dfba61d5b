"""The restore target, reached only through folder descriptors.

Every folder the restore writes in is opened component by component from the target's own
descriptor with ``O_NOFOLLOW | O_DIRECTORY`` (openat-style), and every file, link and symlink
is created, opened or removed relative to its folder's descriptor, never by a path string the
kernel would resolve. So no symlink is ever followed: not one already in the target, not one an
earlier restore left, and not one this restore makes. A folder position held by a symlink is
refused with PathEscape (exit 10); by anything else that is not a folder, with InvalidInput.

Folder descriptors are cached (up to ``fd_cache_size()``); past that a folder is walked again from
its nearest cached ancestor. Walking by descriptor also lets paths longer than PATH_MAX restore.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import stat as stat_mod
from contextlib import contextmanager
from typing import Iterator

from storage.errors import NO_HARD_LINKS, BackupError, InvalidInput, PathEscape, PermanentError



def fd_cache_size() -> int:
    """Folder descriptors held at once: a quarter of the open-file limit when the restore starts
    (raised to the hard limit when the repository was opened: storage/limits.py)."""
    return max(64, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 16) // 4)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
WRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EDQUOT)


def target_error(exc: OSError, target: str) -> BackupError | None:
    """The sentence for an error of the whole target (every further write would fail too)."""
    if exc.errno in _FULL:
        return PermanentError(f"No space is left on the file system of the restore target {target}; the files "
                              "restored so far are complete and the rest were left out. Free space and restore again.")
    if exc.errno == errno.EROFS:
        return PermanentError(f"The restore target {target} is on a read-only file system; "
                              "restore into a writable folder.")
    if exc.errno == errno.EFBIG:
        return PermanentError(f"A file went past the largest size the file system of {target} or a limit on this "
                              "process (ulimit -f) allows; lift the limit or restore elsewhere.")
    return None


def split(rel: str) -> tuple[str, str]:
    """(folder, name) of a relative path."""
    folder, _, name = rel.rpartition("/")
    return folder, name


class Target:
    """Folder descriptors of one restore target (see the module docstring)."""

    def __init__(self, path: str):
        self.path = path
        try:
            os.makedirs(path, exist_ok=True)
            self.root = os.open(path, _DIR)
        except OSError as exc:
            raise target_error(exc, path) or InvalidInput(
                f"The restore target {path} cannot be used ({exc.strerror}); choose a folder you can write.") from None
        self.fds: dict[str, int] = {"": self.root}
        self.fd_cache = fd_cache_size()

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def _step(self, fd: int, name: str, rel: str, create: bool) -> int:
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
        try:
            return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            # with O_DIRECTORY, Linux answers ENOTDIR for a symlink; others say ELOOP
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat_mod.S_ISLNK(
                    os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise PathEscape(f"The folder {rel!r} in the target is a symlink; restore refused "
                                 "(move it away to restore there).") from None
            if exc.errno == errno.ENOTDIR:
                raise InvalidInput(f"{rel!r} in the target is not a folder, but the snapshot has a folder there; "
                                   "move it away first.") from None
            raise

    def _walk(self, rel: str, create: bool, cache: bool) -> tuple[int, bool]:
        """(descriptor of folder ``rel``, whether the caller must close it)."""
        cut = len(rel)
        while cut > 0 and rel[:cut] not in self.fds:
            cut = max(rel.rfind("/", 0, cut), 0)
        fd, owned = self.fds[rel[:cut]], False
        while cut < len(rel):
            end = rel.find("/", cut + 1)
            end = len(rel) if end < 0 else end
            name = rel[cut + 1 if cut else 0:end]
            nfd = self._step(fd, name, rel[:end], create)
            if owned:
                os.close(fd)
            fd, owned, cut = nfd, True, end
            if cache and len(self.fds) < self.fd_cache:
                self.fds[rel[:end]], owned = fd, False
        return fd, owned

    def ensure(self, rel: str) -> None:
        """Create folder ``rel`` and its parents as needed (called before the writers start)."""
        if rel not in self.fds:
            fd, owned = self._walk(rel, True, True)
            if owned:
                os.close(fd)

    def cached(self, rel: str) -> int | None:
        """The open descriptor of folder ``rel`` if it is cached, else None (thread-safe)."""
        return self.fds.get(rel)

    @contextmanager
    def folder(self, rel: str) -> Iterator[int]:
        """The descriptor of an existing folder (thread-safe: the cache is not changed)."""
        fd = self.fds.get(rel)
        if fd is not None:
            yield fd
            return
        fd, owned = self._walk(rel, False, False)
        try:
            yield fd
        finally:
            if owned:
                os.close(fd)

    def finish_dir(self, rel: str, mode: int, mtime_ns: int) -> None:
        with self.folder(rel) as fd:
            os.fchmod(fd, stat_mod.S_IMODE(mode))
            os.utime(fd, ns=(mtime_ns, mtime_ns))

    def link(self, source: str, rel: str) -> bool:
        """Hard-link ``rel`` to the restored file ``source``; False if the target's file system
        has no hard links and ``rel`` became a copy."""
        sfolder, sname = split(source)
        folder, name = split(rel)
        with self.folder(sfolder) as sfd, self.folder(folder) as dfd:
            if not stat_mod.S_ISREG(os.stat(sname, dir_fd=sfd, follow_symlinks=False).st_mode):
                raise InvalidInput(f"{source!r} in the target is not a file; its hard link {rel!r} was not made.")
            _unlink_file(name, dfd)
            try:
                os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                return True
            except OSError as exc:
                if exc.errno not in NO_HARD_LINKS:
                    raise
            _copy(sname, sfd, name, dfd)
            return False

    def symlink(self, text: str, rel: str, mtime_ns: int) -> None:
        folder, name = split(rel)
        with self.folder(folder) as dfd:
            _unlink_file(name, dfd)
            os.symlink(text, name, dir_fd=dfd)
            try:
                os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)
            except (NotImplementedError, OSError):
                pass


def _unlink_file(name: str, dfd: int) -> None:
    """Clear the way for a new link: a file or symlink goes, a folder is an error."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat_mod.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a folder is in its place in the target")
    os.unlink(name, dir_fd=dfd)


def _copy(sname: str, sfd: int, name: str, dfd: int) -> None:
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
    with os.fdopen(src, "rb") as s:
        st = os.fstat(s.fileno())
        dst = os.open(name, WRITE | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
        with os.fdopen(dst, "wb") as d:
            shutil.copyfileobj(s, d)
            d.flush()
            os.fchmod(d.fileno(), stat_mod.S_IMODE(st.st_mode))
            os.utime(d.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
