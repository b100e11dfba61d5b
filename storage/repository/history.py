"""A file's history across snapshots: every snapshot in which it appeared, changed or went away.

A path names a file in a snapshot when it lies under the snapshot's source (an absolute path),
or when it is a path inside the snapshot itself (``src/app.py``). Snapshots are read oldest
first, one tree at a time; snapshots of an unchanged workspace share a tree, read once.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from storage.errors import IntegrityError
from storage.snapshots import Snapshot
from storage.snapshots.manifest import TreeEntry

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository

Change = Literal["added", "changed", "deleted"]


@dataclass
class FileChange:
    time: str
    snapshot: str
    change: Change
    path: str            # inside the snapshot
    source: str
    size: int | None     # None for a deletion
    sha256: str | None
    type: str | None     # file, symlink, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inside(snap: Snapshot, path: str) -> str | None:
    """The path of ``path`` inside ``snap``: relative to its source when ``path`` is absolute."""
    if os.path.isabs(path):
        source = snap.source.rstrip("/") or "/"
        rel = posixpath.relpath(posixpath.normpath(path), source)
        return None if rel == "." or rel.startswith("../") or rel == ".." else rel
    rel = posixpath.normpath(path.replace(os.sep, "/"))
    return None if rel.startswith("../") or rel in (".", "..") else rel


def _state(entry: TreeEntry | None) -> tuple | None:
    if entry is None:
        return None
    return (entry.get("type"), entry.get("sha256"), entry.get("target"), entry.get("link"), entry.get("size"))


def file_history(repo: Repository, path: str) -> list[FileChange]:
    """The snapshots, oldest first, in which ``path`` was added, changed or deleted (per source:
    two sources that both hold such a path each have their own line of changes)."""
    trees: dict[tuple[str, str], TreeEntry | None] = {}
    last: dict[str, tuple | None] = {}
    out: list[FileChange] = []
    for snap in repo.snapshots.all():
        rel = inside(snap, path)
        if rel is None:
            continue
        if (snap.tree_id, rel) not in trees:
            try:
                trees[snap.tree_id, rel] = next((e for e in repo.snapshots.load_tree(snap) if e["path"] == rel), None)
            except IntegrityError:
                continue  # verify names the damaged tree; history goes on with the others
        entry = trees[snap.tree_id, rel]
        before, now = last.get(snap.source), _state(entry)
        last[snap.source] = now
        if now == before:
            continue
        change: Change = "added" if before is None else "deleted" if now is None else "changed"
        out.append(FileChange(snap.time, snap.id, change, rel, snap.source, entry.get("size") if entry else None,
                              entry.get("sha256") if entry else None, entry.get("type") if entry else None))
    return out
