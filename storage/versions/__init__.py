"""storage.versions: per-file version history kept in the repository.

Vocabulary:
- *version*: one state of one file (by path): a number (1, 2, ... per file), a parent (the
  version before it), author, message, time, tags, and content addressed by its SHA-256.
- *record*: the object that stores one version, ``versions/files/<sha256(path)>/<number>``.
- *content record*: ``versions/content/<sha256>``, the chunk ids of one content; chunks live
  in the repository's packs and index, shared with backups.
- *pin*: ``versions/pins/<pack id>``, a backup's pack that a version's content uses too.

Invariants (docs/FORMAT.md, "versions"):
- Records are created with exclusive writes: per file, numbers and parent links are linear,
  whoever writes at the same time; a writer that loses a number takes the next one.
- One file's versions are listed from its own folder, never by reading other files' records.
- Prune keeps every pack written for versions and every pinned pack (``version_packs``).
"""

from storage.versions.content import StoredContent, is_version_run, version_packs
from storage.versions.diff import diff_contents
from storage.versions.records import Version, file_key
from storage.versions.store import VersionStats, VersionStore

__all__ = ["StoredContent", "Version", "VersionStats", "VersionStore", "diff_contents", "file_key", "is_version_run",
           "version_packs"]
