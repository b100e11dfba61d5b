"""Scan a workspace into a sorted tree, deciding which files must be read.

A file whose size, mtime_ns, ctime_ns and inode match the previous snapshot's entry is not
read again: its chunk list is reused, so an unchanged tree backs up in about the time it
takes to stat it. Symlinks are recorded, never followed. FIFOs, sockets and devices are
skipped with a warning. A directory or entry that exists but cannot be read (permissions,
a path longer than PATH_MAX) is left out and named in ``ScanResult.missing``: the snapshot
will be incomplete. Names are kept as ``os`` gives them (names.py).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from typing import Any, Callable, TypedDict

from storage.errors import InvalidInput
from storage.objects import EMPTY_SHA256
from storage.snapshots.names import shown

Entry = dict[str, Any]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Missing(TypedDict):
    """Something the user asked to back up that the snapshot lacks, and why."""

    path: str
    reason: str


class ScanResult:
    """The tree of a workspace, and which of its file entries still need their content read.

    A plain class on purpose: Prefect walks dataclasses and lists passed between tasks, and
    this one can hold hundreds of thousands of entries.
    """

    def __init__(self, source: str, entries: list[Entry], to_read: list[int], warnings: list[str],
                 missing: list[Missing] | None = None):
        self.source = source
        self.entries = entries
        self.to_read = to_read
        self.warnings = warnings
        self.missing = missing or []  # [{path, reason}]: what exists but could not be read
        # The parent snapshot's tree and its id, when the scan compared against one: a backup
        # that changed nothing reuses that tree object instead of writing the same one again.
        self.parent_tree: list[Any] | None = None
        self.parent_tree_id: str | None = None

    @property
    def bytes_to_read(self) -> int:
        return sum(self.entries[i]["size"] for i in self.to_read)


class _Excludes:
    """Exclude globs: a pattern without ``/`` matches a name anywhere, one with ``/`` the path
    relative to the source (and everything below it). Compiled once into two regexes: matching
    each pattern in turn cost a quarter of an unchanged re-backup's scan."""

    def __init__(self, patterns: list[str]):
        names = [p.rstrip("/") for p in patterns if "/" not in p.rstrip("/")]
        paths = [p.rstrip("/") for p in patterns if "/" in p.rstrip("/")]
        paths += [p + "/*" for p in paths]
        self._name = re.compile("|".join(fnmatch.translate(p) for p in names)) if names else None
        self._path = re.compile("|".join(fnmatch.translate(p) for p in paths)) if paths else None

    def __call__(self, rel: str, name: str) -> bool:
        return bool((self._name and self._name.match(name)) or (self._path and self._path.match(rel)))


def scan_workspace(
    source: str,
    excludes: list[str] | None = None,
    previous: dict[str, Entry] | None = None,
    can_reuse: Callable[[Entry], bool] | None = None,
) -> ScanResult:
    root = os.path.abspath(source)
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise InvalidInput(f"The source {source} {what}; give a directory to back up.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise InvalidInput(f"The source {source} cannot be read (permission denied); "
                           "back it up as a user who may read it.")
    walker = _Walker(_Excludes(list(excludes)) if excludes else None)
    walker.walk(root)
    entries = sorted(walker.entries, key=lambda e: e["path"])
    to_read = _plan_reads(entries, previous or {}, can_reuse)
    return ScanResult(root, entries, to_read, walker.warnings, walker.missing)


class _Walker:
    """Walks a tree depth first, collecting entries, warnings, and what it could not read."""

    def __init__(self, excluded: _Excludes | None):
        self.excluded = excluded
        self.entries: list[Entry] = []
        self.warnings: list[str] = []
        self.missing: list[Missing] = []

    def walk(self, root: str) -> None:
        stack = [("", root)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            try:
                # A folder is opened without following a symlink: one swapped in after the
                # folder was listed would lead the walk outside the source. The source itself
                # may be a symlink to a folder.
                fd = os.open(abs_dir, _DIR_FLAGS | (os.O_NOFOLLOW if rel_dir else 0))
            except OSError as exc:
                self._unreadable(rel_dir or ".", exc, "directory")
                continue
            try:
                self._list(fd, rel_dir, abs_dir, stack)
            finally:
                os.close(fd)

    def _list(self, fd: int, rel_dir: str, abs_dir: str, stack: list[tuple[str, str]]) -> None:
        with os.scandir(fd) as it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                if self.excluded and self.excluded(rel, de.name):
                    continue
                e = self._entry(de, rel, fd)
                if e is not None:
                    self.entries.append(e)
                    if e["type"] == "dir":
                        stack.append((rel, os.path.join(abs_dir, de.name)))

    def _entry(self, de: os.DirEntry, rel: str, dir_fd: int) -> Entry | None:
        try:
            st = de.stat(follow_symlinks=False)
            mode = st.st_mode
            e: Entry = {"path": rel, "mode": stat.S_IMODE(mode), "mtime_ns": st.st_mtime_ns}
            if stat.S_ISDIR(mode):
                e["type"] = "dir"
            elif stat.S_ISREG(mode):
                e.update(type="file", size=st.st_size, ctime_ns=st.st_ctime_ns, ino=st.st_ino)
                if st.st_nlink > 1:
                    e["_hl"] = (st.st_dev, st.st_ino)
            elif stat.S_ISLNK(mode):
                e.update(type="symlink", target=os.readlink(de.name, dir_fd=dir_fd))
            else:
                kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
                self.warnings.append(f"{shown(rel)} is a {kind}; skipped")
                return None
        except OSError as exc:
            self._unreadable(rel, exc, "")
            return None
        return e

    def _unreadable(self, rel: str, exc: OSError, what: str) -> None:
        """A vanished item is a warning; one that exists but cannot be read leaves the snapshot
        incomplete (ScanResult.missing)."""
        name = f"{what} {shown(rel)}".strip()
        if exc.errno == errno.ENOENT:
            self.warnings.append(f"{name} vanished while it was scanned; not backed up")
            return
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            self.warnings.append(f"{name} was replaced by a symlink or a file after it was listed; not backed up")
            return
        reason = unreadable_reason(exc)
        self.warnings.append(f"{name} could not be read ({reason}); not backed up")
        self.missing.append(Missing(path=shown(rel), reason=reason))


def unreadable_reason(exc: OSError) -> str:
    """Why something that exists could not be read, for a warning and ``missing``."""
    if exc.errno == errno.ENAMETOOLONG:
        return "its path is longer than the system allows (PATH_MAX)"
    return exc.strerror or str(exc)


def _plan_reads(entries: list[Entry], previous: dict[str, Entry],
                can_reuse: Callable[[Entry], bool] | None) -> list[int]:
    """Mark hard links, fill in empty and unchanged files; the indices of files to read."""
    to_read: list[int] = []
    first_link: dict[tuple[int, int], str] = {}
    for i, e in enumerate(entries):
        if e["type"] != "file":
            continue
        key = e.pop("_hl", None)
        if key is not None:
            if key in first_link:
                e["type"] = "hardlink"
                e["link"] = first_link[key]
                continue
            first_link[key] = e["path"]
        if e["size"] == 0:
            e["chunks"] = []
            e["sha256"] = EMPTY_SHA256
            continue
        prev = previous.get(e["path"])
        if prev is not None and _unchanged(prev, e) and (can_reuse is None or can_reuse(prev)):
            e["chunks"] = prev["chunks"]
            e["sha256"] = prev["sha256"]
            continue
        to_read.append(i)
    return to_read


def _unchanged(prev: Entry, e: Entry) -> bool:
    """Same size, mtime, ctime and inode, and read whole last time (not ``changed_while_read``)."""
    return (prev.get("type") == "file" and prev.get("size") == e["size"] and prev.get("mtime_ns") == e["mtime_ns"]
            and prev.get("ctime_ns") == e["ctime_ns"] and prev.get("ino") == e["ino"]
            and not prev.get("changed_while_read"))
