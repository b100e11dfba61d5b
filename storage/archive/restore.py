"""Restore from an archive: plan (what would be created or overwritten) and extract.

Both read the archive as a stream from its destination. Extraction uses tarfile's ``data``
filter, the rule for untrusted archives: no member lands outside the target (absolute paths,
``..``, paths through a symlink that leads out, hard links to outside files, device files are
refused). Symlinks themselves are restored as they were in the snapshot, wherever they point.
A refused member is left out and named in ``not_restored``; everything else is restored.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, cast

from storage.archive.age import Decryptor
from storage.archive.meta import ArchiveMeta
from storage.backend import Backend, display_url
from storage.backend.streams import is_offline, open_reader
from storage.errors import BackupError, IntegrityError, InvalidInput, PasswordRequired, PermanentError


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


def _open(dest: Backend, meta: ArchiveMeta, password: str | None) -> BinaryIO:
    if meta.encrypted and password is None:
        raise PasswordRequired(f"Archive {meta.id[:8]} is encrypted; give the repository's password (--password-file, "
                               "BACKUPFLOW_PASSWORD...) or decrypt it with `age -d` yourself.")
    try:
        stream = open_reader(dest, meta.file)
    except BackupError as exc:
        raise _offline(meta, dest) if is_offline(meta.storage_class) else exc from None
    if not meta.encrypted or password is None:
        return stream
    try:
        return cast(BinaryIO, Decryptor(stream, password))
    except BaseException:
        stream.close()
        raise


def _offline(meta: ArchiveMeta, dest: Backend) -> PermanentError:
    return PermanentError(f"Archive {meta.id[:8]} in {display_url(dest.url)} is in the {meta.storage_class} class, "
                          f"which cannot be read until it is restored (rehydrated); request that for {meta.file} "
                          "and run the restore again once it is done.")


def _members(dest: Backend, meta: ArchiveMeta, password: str | None):
    stream = _open(dest, meta, password)
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


def plan_restore_archive(dest: Backend, meta: ArchiveMeta, target: str,
                         password: str | None = None) -> ArchiveRestorePlan:
    path = _check_target(target)
    exists = os.path.isdir(path)
    plan = ArchiveRestorePlan(meta.id, path, exists, not exists or not os.listdir(path))
    for _, member in _members(dest, meta, password):
        if not (member.isreg() or member.islnk()):
            continue
        plan.files += 1
        plan.bytes += member.size
        there = os.path.lexists(os.path.join(path, member.name))
        (plan.overwrite if there else plan.create).append(member.name)
    return plan


class _Extractor:
    """tarfile's ``data`` filter, plus what it leaves out that a restore should bring back:
    symlinks wherever they point, and each file's and folder's permission bits (folders get
    theirs at the end, so a read-only folder can still be filled)."""

    def __init__(self) -> None:
        self.refused: dict[str, str] = {}
        self.dirs: list[tuple[str, int]] = []

    def __call__(self, member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
        try:
            safe = tarfile.data_filter(member, where)
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            if member.issym():
                # A symlink may point anywhere, as in the snapshot (a restore from the repository
                # restores it too): the filter resolves each later member's path on disk, so
                # nothing is ever written through it.
                return tarfile.tar_filter(member, where)
            self.refused[member.name] = "refused: a hard link to a file outside the target"
            return None
        except tarfile.FilterError as exc:
            self.refused[member.name] = f"refused: {exc}"
            return None
        mode = member.mode & 0o777  # no setuid, setgid or sticky bits from an archive
        if member.isdir():
            self.dirs.append((os.path.join(where, safe.name), mode))
            return safe
        return safe.replace(mode=mode, deep=False) if member.isreg() else safe

    def finish(self) -> None:
        for folder, mode in reversed(self.dirs):
            os.chmod(folder, mode)


def restore_archive(dest: Backend, meta: ArchiveMeta, target: str, password: str | None = None) -> dict[str, Any]:
    """Extract the archive into ``target``; {files, bytes, target, not_restored: {path: why}}."""
    path = _check_target(target)
    os.makedirs(path, exist_ok=True)
    extractor = _Extractor()
    files = size = 0
    for tar, member in _members(dest, meta, password):
        tar.extract(member, path, filter=extractor)
        if (member.isreg() or member.islnk()) and member.name not in extractor.refused:
            files += 1
            size += member.size
    extractor.finish()
    return {"archive": meta.id, "snapshot_id": meta.id, "target": path, "files": files, "bytes": size,
            "not_restored": extractor.refused}
