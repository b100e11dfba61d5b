"""Restore from an archive: plan (what would be created or overwritten) and extract.

Both read the archive as a stream from its destination. Extraction uses tarfile's ``data``
filter, the rule ``tar`` itself follows for untrusted archives: no member lands outside the
target (absolute paths, ``..``, links that point outside it, device files are refused). A
refused member is left out and named in ``not_restored``; everything else is restored.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from storage.archive.meta import ArchiveMeta
from storage.backend import Backend, display_url
from storage.backend.streams import is_offline, open_reader
from storage.errors import BackupError, IntegrityError, InvalidInput, PermanentError


@dataclass
class ArchiveRestorePlan:
    archive: str
    target: str
    target_exists: bool
    target_empty: bool
    create: list[str] = field(default_factory=list)
    overwrite: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_target(target: str) -> str:
    path = os.path.abspath(os.path.expanduser(target))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise InvalidInput(f"The restore target {target} is a file, not a folder; give a folder to restore into.")
    return path


def _open(dest: Backend, meta: ArchiveMeta) -> BinaryIO:
    if meta.encrypted:
        raise InvalidInput(f"Archive {meta.id[:8]} is encrypted; decrypt it with `age -d {meta.file} | tar -xz`.")
    try:
        return open_reader(dest, meta.file)
    except BackupError as exc:
        raise _offline(meta, dest) if is_offline(meta.storage_class) else exc from None


def _offline(meta: ArchiveMeta, dest: Backend) -> PermanentError:
    return PermanentError(f"Archive {meta.id[:8]} in {display_url(dest.url)} is in the {meta.storage_class} class, "
                          f"which cannot be read until it is restored (rehydrated); request that for {meta.file} "
                          "and run the restore again once it is done.")


def _members(dest: Backend, meta: ArchiveMeta):
    stream = _open(dest, meta)
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                yield tar, member
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and is_offline(meta.storage_class):
            raise _offline(meta, dest) from None
        raise IntegrityError(f"Archive {meta.id[:8]} cannot be read as a tar.gz ({type(exc).__name__}: {exc}); "
                             "`backupflow verify --archives` checks it against its recorded hash.") from None
    finally:
        stream.close()


def plan_restore_archive(dest: Backend, meta: ArchiveMeta, target: str) -> ArchiveRestorePlan:
    path = _check_target(target)
    exists = os.path.isdir(path)
    plan = ArchiveRestorePlan(meta.id, path, exists, not exists or not os.listdir(path))
    for _, member in _members(dest, meta):
        if not (member.isreg() or member.islnk()):
            continue
        plan.files += 1
        plan.bytes += member.size
        there = os.path.lexists(os.path.join(path, member.name))
        (plan.overwrite if there else plan.create).append(member.name)
    return plan


def restore_archive(dest: Backend, meta: ArchiveMeta, target: str) -> dict[str, Any]:
    """Extract the archive into ``target``; {files, bytes, target, not_restored: {path: why}}."""
    path = _check_target(target)
    os.makedirs(path, exist_ok=True)
    refused: dict[str, str] = {}

    def only_data(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, where)
        except tarfile.FilterError as exc:
            refused[member.name] = f"refused: {exc}"
            return None

    files = size = 0
    for tar, member in _members(dest, meta):
        tar.extract(member, path, filter=only_data)
        if (member.isreg() or member.islnk()) and member.name not in refused:
            files += 1
            size += member.size
    return {"archive": meta.id, "snapshot_id": meta.id, "target": path, "files": files, "bytes": size,
            "not_restored": refused}
