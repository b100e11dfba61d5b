"""storage.snapshots: snapshot manifests, finding them, and scanning a workspace into a tree.

Vocabulary:
- *snapshot*: one committed backup; its manifest names its type, parent, base full, chain,
  the packs its run added, stats, and the *tree*.
- *tree*: a flat list of entries sorted by path; an entry is a dict with ``path`` (relative,
  ``/``-separated), ``type`` (file, dir, symlink, hardlink), ``mode``, ``mtime_ns``, ``size``,
  ``target`` (symlink), ``link`` (hardlink: the path it links to), ``chunks`` and ``sha256``.
  Paths are file names as ``os`` gives them: bytes that are not UTF-8 are lone surrogates
  (names.py), stored as JSON ``\\udcXX`` escapes.
- *chain*: a full snapshot and everything that depends on it; its id is the full's run id.

Invariants: a snapshot exists exactly when its manifest does, and a manifest and a tree are
named by the hash of their JSON (docs/FORMAT.md, "snapshot manifest" and "write order and
concurrency").
"""

from storage.snapshots.manifest import SNAPSHOT_TYPES, Snapshot, SnapshotStore, SnapshotType, TreeEntry
from storage.snapshots.names import require_text, shown
from storage.snapshots.scan import ScanResult, scan_workspace

__all__ = ["SNAPSHOT_TYPES", "ScanResult", "Snapshot", "SnapshotStore", "SnapshotType", "TreeEntry", "require_text",
           "scan_workspace", "shown"]
