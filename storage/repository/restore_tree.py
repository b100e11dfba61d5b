"""Which entries of a snapshot's tree a restore (or export) may touch, checked before any write.

A tree object is named by its hash, so bit rot cannot change it unnoticed, but a hostile or
buggy writer can store any JSON under a correct hash. Every entry is therefore checked against
the table in docs/FORMAT.md ("snapshot manifest") before anything is written: a path that
would leave the target is refused with PathEscape (exit 10), any other malformed entry with
IntegrityError (exit 6), each in one sentence naming the entry.
"""

from __future__ import annotations

import bisect
import os
from typing import Any, Mapping

from storage.errors import IntegrityError, NotFound, PathEscape
from storage.snapshots import Snapshot, TreeEntry

ENTRY_TYPES = ("file", "dir", "symlink", "hardlink")
_INT64 = 1 << 63


def check_path(path: str) -> None:
    wrapped = f"/{path}/"  # an empty, "." or ".." part (or a leading "/") shows as "//", "/./", "/../"
    # A backslash is an ordinary name character on POSIX (and such files are backed up); it
    # is only a separator, and so a way out of the target, where the OS says so.
    if ("//" in wrapped or "/./" in wrapped or "/../" in wrapped or "\x00" in path
            or ("\\" in path and "\\" in (os.sep, os.altsep))):
        raise PathEscape(f"The snapshot entry {path!r} would be written outside the target; restore refused.")


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _entry_problem(e: Mapping[str, Any]) -> str | None:
    """What is wrong with one entry's fields (its path aside), or None."""
    t = e.get("type")
    if t not in ENTRY_TYPES:
        return f"has the unknown type {t!r}"
    if not _is_int(e.get("mode"), 0, 0o10000):
        return f"has the mode {e.get('mode')!r}, not permission bits"
    if not _is_int(e.get("mtime_ns"), -_INT64, _INT64):
        return f"has the modification time {e.get('mtime_ns')!r}, not a 64-bit number of nanoseconds"
    if t == "file":
        if not _is_int(e.get("size"), 0, _INT64):
            return f"has the size {e.get('size')!r}"
        chunks = e.get("chunks")
        # a string that is no chunk id is simply not found in the index: that file is reported
        if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
            return "has a chunk list that is not a list of chunk ids"
    if t == "symlink" and not (isinstance(e.get("target"), str) and e["target"] and "\x00" not in e["target"]):
        return "is a symlink without a usable target"
    if t == "hardlink" and not isinstance(e.get("link"), str):
        return "is a hard link without a source path"
    return None


def _malformed(snap: Snapshot, what: str) -> IntegrityError:
    return IntegrityError(f"The tree of snapshot {snap.id[:8]} is malformed: {what}; restore refused.")


def validate_tree(snap: Snapshot) -> dict[str, TreeEntry]:
    """Check every entry of ``snap`` (see the module docstring); returns entries by path."""
    tree = snap.tree
    if not isinstance(tree, list) or not all(isinstance(e, dict) for e in tree):
        raise _malformed(snap, "it is not a list of entries")
    by_path: dict[str, TreeEntry] = {}
    for e in tree:
        path = e.get("path")
        if not isinstance(path, str):
            raise _malformed(snap, f"an entry has the path {path!r}")
        check_path(path)
        problem = _entry_problem(e)
        if problem:
            raise _malformed(snap, f"the entry {path!r} {problem}")
        if path in by_path:
            raise _malformed(snap, f"{path!r} is listed twice (as {by_path[path]['type']} and {e['type']})")
        by_path[path] = e
    _check_structure(snap, by_path)
    return by_path


def _check_structure(snap: Snapshot, by_path: dict[str, TreeEntry]) -> None:
    """Nothing lies below a symlink or a file; hard links name a file of the tree."""
    paths = sorted(by_path)
    for path, e in by_path.items():
        if e["type"] != "dir":
            # the first path after ``path/`` in sorted order is below it, if any is
            below = paths[min(bisect.bisect_left(paths, path + "/"), len(paths) - 1)]
            if below.startswith(path + "/"):
                if e["type"] == "symlink":
                    raise PathEscape(f"The snapshot entry {below!r} lies below the symlink {path!r}; restore refused.")
                raise _malformed(snap, f"{below!r} lies below {path!r}, which is a {e['type']}")
        if e["type"] == "hardlink":
            check_path(e["link"])
            source = by_path.get(e["link"])
            if source is None or source["type"] != "file":
                what = "is not in the snapshot" if source is None else f"is a {source['type']}, not a file"
                raise _malformed(snap, f"the hard link {path!r} names {e['link']!r}, which {what}")


def select_entries(snap: Snapshot, include: list[str] | None) -> list[TreeEntry]:
    """The entries to restore: all of them, or those at or below an ``include`` path."""
    validate_tree(snap)
    tree = snap.tree or []
    if not include:
        return tree
    wanted = [i.strip("/") for i in include]
    for w in wanted:
        check_path(w)
    chosen = [e for e in tree if any(e["path"] == w or e["path"].startswith(w + "/") for w in wanted)]
    if not chosen:
        raise NotFound(f"None of {', '.join(include)} is in snapshot {snap.id[:8]}; see `backupflow ls {snap.id[:8]}`.")
    return chosen
