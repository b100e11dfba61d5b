"""What changed between a snapshot and another snapshot, or the live folder it was taken of,
with sizes: the "preview diff" of the panel (flows/panel.py).

Two snapshots compare by content (sha256, type, target, mode), like ``backupflow diff``. A live
folder is not read: a file counts as changed when its type, size or mtime differs from the
snapshot's entry, the test a backup uses to skip unchanged files. Directories are listed only
when added or removed. Paths are relative and ``/``-separated, as in snapshots; a name that is
not UTF-8 keeps its escapes (``os.fsdecode``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from storage.snapshots import Snapshot, TreeEntry
from storage.snapshots.manifest import EntryType


@dataclass
class SizedDiff:
    old: str   # a snapshot id
    new: str   # a snapshot id, or the folder
    added: list[tuple[str, int]] = field(default_factory=list)         # path, size now
    removed: list[tuple[str, int]] = field(default_factory=list)       # path, size before
    changed: list[tuple[str, int, int]] = field(default_factory=list)  # path, size before, size now

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "added": [list(a) for a in self.added],
                "removed": [list(r) for r in self.removed], "changed": [list(c) for c in self.changed]}


def _content(e: TreeEntry) -> tuple:
    return (e["type"], e.get("sha256"), e.get("target"), e.get("link"), e.get("mode"))


def _metadata(e: TreeEntry) -> tuple:
    return (e["type"], e.get("size", 0), e["mtime_ns"])


def _compare(diff: SizedDiff, old: dict[str, TreeEntry], new: dict[str, TreeEntry], same) -> SizedDiff:
    diff.added = [(p, new[p].get("size", 0)) for p in sorted(new) if p not in old]
    diff.removed = [(p, old[p].get("size", 0)) for p in sorted(old) if p not in new]
    diff.changed = [(p, old[p].get("size", 0), new[p].get("size", 0)) for p in sorted(old)
                    if p in new and new[p]["type"] != "dir" and not same(old[p], new[p])]
    return diff


def diff_snapshots_sized(a: Snapshot, b: Snapshot) -> SizedDiff:
    return _compare(SizedDiff(a.id, b.id), {e["path"]: e for e in a.entries}, {e["path"]: e for e in b.entries},
                    lambda x, y: _content(x) == _content(y))


def _live_entry(path: str, st: os.stat_result) -> TreeEntry:
    kind: EntryType = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    entry: TreeEntry = {"path": path, "type": kind, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
    if kind == "file":
        entry["size"] = st.st_size
    return entry


def live_entries(folder: str) -> dict[str, TreeEntry]:
    """The folder's entries as a snapshot would name them (without reading any file)."""
    out: dict[str, TreeEntry] = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            full = os.path.join(top, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue  # gone while listed
            rel = os.fsdecode(os.path.relpath(full, folder)).replace(os.sep, "/")
            out[rel] = _live_entry(rel, st)
    return out


def diff_with_folder(snap: Snapshot, folder: str) -> SizedDiff:
    live = live_entries(folder)
    return _compare(SizedDiff(snap.id, folder), {e["path"]: e for e in snap.entries}, live,
                    lambda x, y: x["type"] == y["type"] and (x["type"] != "file" or _metadata(x) == _metadata(y)))
