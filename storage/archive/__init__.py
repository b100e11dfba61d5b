"""storage.archive: the archive tier. Old snapshots become standard ``.tar.gz`` files plus a
metadata JSON on an archive destination (any backend URL), then leave the repository.

Vocabulary: an *archive* is one snapshot as ``ID.tar.gz`` (``tar -xzf`` restores it) and
``ID.json`` (:class:`ArchiveMeta`); its id is the snapshot's id. The *destination* is where
archives live (``archive_path`` in the config, ``--to``).

Invariants (docs/FORMAT.md, "archive metadata"):

- The metadata is written last and is the commit point: data without metadata is not an
  archive, and is written again by the next run (same name, so never twice).
- A snapshot leaves the repository only after its archive was read back and matched the
  snapshot (hash, entries, content hashes): :mod:`storage.archive.writer`.
- Archiving never forgets a snapshot that a snapshot staying in the repository needs:
  :mod:`storage.archive.select`.

Other code (retention) lists and removes archives with :func:`list_archives` and
:func:`remove_archive`.
"""

from storage.archive.meta import (
    ArchiveMeta, archives_in, data_name, list_archives, meta_name, read_meta, remove_archive, remove_from, resolve,
)
from storage.archive.restore import ArchiveRestorePlan, plan_restore_archive, restore_archive
from storage.archive.select import ArchivePlan, parse_age, select
from storage.archive.writer import (
    Written, check_archive, publish_archive, published, read_members, sweep_destination, verify_stored,
    write_archive,
)

__all__ = ["ArchiveMeta", "ArchivePlan", "ArchiveRestorePlan", "Written", "archives_in", "check_archive",
           "data_name", "list_archives", "meta_name", "parse_age", "plan_restore_archive", "publish_archive",
           "published", "read_members", "read_meta", "remove_archive", "remove_from", "resolve", "restore_archive",
           "select", "sweep_destination", "verify_stored", "write_archive"]
