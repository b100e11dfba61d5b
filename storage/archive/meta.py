"""Archive metadata: the JSON beside each archive, and listing, finding and removing archives.

An archive destination (any backend URL) holds, per archived snapshot ``ID`` (its full id):

    ID.tar.gz        the snapshot as a standard gzip-compressed tar (``ID.tar.gz.age`` when
                     encrypted with age)
    ID.json          this metadata, written last: the commit point of the archive

An archive exists only once its metadata exists (docs/FORMAT.md, "archive metadata"). A data
object without metadata is what a killed run left; the next run writes it again.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from storage.backend import Backend, display_url, open_backend
from storage.errors import IntegrityError, InvalidInput, NotFound
from storage.layout import OBJECT_ID
from storage.snapshots.names import dump_json

FORMAT = "backupflow-archive"
VERSION = 1
META_SUFFIX = ".json"


@dataclass
class ArchiveMeta:
    """What ``ID.json`` holds (docs/FORMAT.md, "archive metadata")."""

    id: str                      # the archived snapshot's full id; also the archive's id
    file: str                    # the data object's name at the destination
    sha256: str                  # of the data object's bytes, exactly as stored
    bytes: int                   # the data object's size
    files: int                   # regular files and hard links in the tar
    content_bytes: int           # the snapshot's file content, uncompressed
    type: str
    source: str
    host: str
    time: str                    # when the snapshot was taken (ISO 8601, UTC)
    archived_at: str
    chain: str = ""
    parent: str | None = None
    base_full: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str = ""
    author: str = ""
    compression_level: int = 6   # gzip level, 0-9
    storage_class: str | None = None
    encrypted: bool = False      # the data object is age-encrypted (``.tar.gz.age``)
    repository: str = ""         # where the snapshot came from (no credentials)
    repository_id: str = ""
    format: str = FORMAT
    version: int = VERSION

    @property
    def snapshot_id(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "snapshot_id": self.id}

    def to_bytes(self) -> builtins.bytes:  # the field `bytes` hides the builtin here
        return dump_json(self.to_dict()) + b"\n"

    @classmethod
    def from_bytes(cls, data: builtins.bytes, where: str) -> "ArchiveMeta":
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"The archive metadata {where} is not valid JSON ({exc}).") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise IntegrityError(f"{where} is not backupflow archive metadata.")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in known})
        except TypeError as exc:
            raise IntegrityError(f"The archive metadata {where} lacks a field ({exc}).") from None


def meta_name(archive_id: str) -> str:
    return f"{archive_id}{META_SUFFIX}"


def data_name(archive_id: str, encrypted: bool = False) -> str:
    return f"{archive_id}.tar.gz" + (".age" if encrypted else "")


def _archive_ids(backend: Backend) -> list[str]:
    out = []
    for info in backend.list(""):
        if "/" in info.name or not info.name.endswith(META_SUFFIX):
            continue
        stem = info.name[: -len(META_SUFFIX)]
        if OBJECT_ID.fullmatch(stem):
            out.append(stem)
    return out


def read_meta(backend: Backend, archive_id: str) -> ArchiveMeta:
    name = meta_name(archive_id)
    return ArchiveMeta.from_bytes(backend.load(name), f"{name} in {display_url(backend.url)}")


def archives_in(backend: Backend) -> tuple[list[ArchiveMeta], dict[str, str]]:
    """Every archive at ``backend``, oldest snapshot first, and {id: why} for unreadable metadata."""
    found, damaged = [], {}
    for aid in _archive_ids(backend):
        try:
            found.append(read_meta(backend, aid))
        except NotFound:
            continue  # removed while we listed
        except IntegrityError as exc:
            damaged[aid] = exc.message
    return sorted(found, key=lambda m: (m.time, m.id)), damaged


def resolve(backend: Backend, ref: str) -> ArchiveMeta:
    """The archive named by ``ref`` (a full id or a unique prefix); InvalidInput or NotFound."""
    ref = ref.strip().lower()
    if not ref:
        raise InvalidInput("Name an archive (its id or a unique id prefix; `backupflow archives` lists them).")
    matches = [aid for aid in _archive_ids(backend) if aid.startswith(ref)]
    if not matches:
        raise NotFound(f"There is no archive {ref} at {display_url(backend.url)}; `backupflow archives` lists them.")
    if len(matches) > 1:
        raise InvalidInput(f"The archive id prefix {ref} matches {len(matches)} archives; give more of the id.")
    return read_meta(backend, matches[0])


def publish(backend: Backend, meta: ArchiveMeta) -> None:
    """Write the metadata: from now on the archive exists (idempotent for the same content)."""
    backend.save(meta_name(meta.id), meta.to_bytes(), exclusive=False)


def list_archives(dest_url: str, options: dict[str, Any] | None = None) -> list[ArchiveMeta]:
    """Every archive at ``dest_url``, oldest snapshot first (unreadable metadata is left out)."""
    backend = open_backend(dest_url, options)
    try:
        return archives_in(backend)[0]
    finally:
        backend.close()


def remove_from(backend: Backend, archive_id: str) -> bool:
    """Delete an archive: its data first, then its metadata, so a removal killed half-way leaves
    an archive that is still listed (and that a second removal finishes), never unlisted data.
    False when it was already gone."""
    try:
        meta = read_meta(backend, archive_id)
        names = [meta.file]
    except NotFound:
        return False
    except IntegrityError:
        names = [data_name(archive_id), data_name(archive_id, encrypted=True)]
    for name in [*names, meta_name(archive_id)]:
        try:
            backend.remove(name)
        except NotFound:
            pass
    return True


def remove_archive(dest_url: str, archive_id: str, options: dict[str, Any] | None = None) -> bool:
    """Delete the archive ``archive_id`` (a full id) at ``dest_url``; False when it was not there."""
    if not OBJECT_ID.fullmatch(archive_id or ""):
        raise InvalidInput(f"{archive_id!r} is not a full archive id; give all 64 hex digits.")
    backend = open_backend(dest_url, options)
    try:
        return remove_from(backend, archive_id)
    finally:
        backend.close()
