"""Write one snapshot as an archive, read it back to check it, and publish it.

The three steps a flow runs as separate tasks, so that a snapshot leaves the repository only
after its archive was read back and matched (docs/FORMAT.md, "archive metadata"):

1. :func:`write_archive` streams the snapshot's tar.gz from the repository straight into the
   destination (chunk by chunk: never the whole archive in memory, nor on local disk when the
   destination is in the cloud), hashing the bytes as they go.
2. :func:`check_archive` reads the stored object back: its SHA-256 must be the one written,
   and the tar's list of entries, each regular file's content hash and size must be the
   snapshot's.
3. :func:`publish_archive` moves the object to its storage class where that is done after the
   check, then writes the metadata: the commit point.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from storage.archive.age import Decryptor, Encryptor
from storage.archive.meta import ArchiveMeta, data_name, publish, read_meta
from storage.backend import Backend, display_url
from storage.backend.streams import apply_storage_class, is_offline, open_reader, open_writer
from storage.errors import IntegrityError, NotFound
from storage.repository.export import write_tar_stream
from storage.repository.leftovers import dead_temporaries
from storage.snapshots import Snapshot

if TYPE_CHECKING:
    from storage.repository.repository import Repository

_READ_BLOCK = 1 << 20


class _Hashing:
    """A write-only stream that hashes and counts what passes into ``sink``."""

    def __init__(self, sink: Any):
        self.sink, self.digest, self.size = sink, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class _HashingReader:
    """A read-only stream over ``src`` that hashes everything read through it."""

    def __init__(self, src: BinaryIO):
        self.src, self.digest, self.size = src, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_READ_BLOCK):
            pass


@dataclass
class Written:
    """What :func:`write_archive` stored (plain data, passed between tasks)."""

    id: str
    file: str
    sha256: str
    bytes: int
    files: int
    encrypted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_archive(repo: Repository, snap: Snapshot, dest: Backend, level: int,
                  storage_class: str | None = None, password: str | None = None) -> Written:
    """Stream ``snap`` (fully loaded) into ``dest`` as ``ID.tar.gz`` with gzip ``level`` 0-9;
    with a ``password`` (an encrypted repository's), age-encrypted as ``ID.tar.gz.age``."""
    name = data_name(snap.id, encrypted=password is not None)
    writer = open_writer(dest, name, storage_class)
    hashing = _Hashing(writer)
    try:
        sink = Encryptor(hashing, password) if password is not None else None
        with repo.reading("archive"):
            files = write_tar_stream(repo, snap, sink or hashing, level)
        if sink is not None:
            sink.close()  # seals the last chunk
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return Written(snap.id, name, hashing.digest.hexdigest(), hashing.size, files, password is not None)


def _expected(snap: Snapshot) -> dict[str, tuple[str, str | None]]:
    """path -> (tar member kind, content sha256 for files), as the export writes them."""
    paths = {e["path"] for e in snap.entries}
    out: dict[str, tuple[str, str | None]] = {}
    for e in snap.entries:
        if e["type"] == "hardlink" and e["link"] in paths:
            out[e["path"]] = ("hardlink", None)
        elif e["type"] in ("file", "hardlink"):
            src = e if e["type"] == "file" else next(x for x in snap.entries if x["path"] == e["link"])
            out[e["path"]] = ("file", src.get("sha256"))
        else:
            out[e["path"]] = (e["type"], None)
    return out


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.islnk():
        return "hardlink"
    return "dir" if member.isdir() else "symlink" if member.issym() else "other"


def read_members(stream: BinaryIO, password: str | None = None) -> tuple[dict[str, tuple[str, str | None]], str, int]:
    """(path -> (kind, content sha256), the stream's SHA-256, its size), read front to back;
    with a ``password``, the stream is age-encrypted."""
    reader = _HashingReader(stream)
    found: dict[str, tuple[str, str | None]] = {}
    try:
        plain = Decryptor(cast(BinaryIO, reader), password) if password is not None else reader
        with tarfile.open(fileobj=cast(BinaryIO, plain), mode="r|gz") as tar:
            for member in tar:
                digest = None
                if member.isreg():
                    f = cast(BinaryIO, tar.extractfile(member))  # a regular file always has content
                    h = hashlib.sha256()
                    while chunk := f.read(_READ_BLOCK):
                        h.update(chunk)
                    digest = h.hexdigest()
                found[member.name] = (_kind(member), digest)
        while plain.read(_READ_BLOCK):  # past the tar's end: the rest must be there and intact
            pass
        reader.drain()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntegrityError(f"it is not a readable tar.gz ({type(exc).__name__}: {exc})") from None
    return found, reader.digest.hexdigest(), reader.size


def check_archive(dest: Backend, written: Written, snap: Snapshot, password: str | None = None) -> None:
    """Read the stored archive back; IntegrityError naming what differs from ``snap``."""
    where = f"The archive {written.file} in {display_url(dest.url)}"
    with open_reader(dest, written.file) as stream:
        try:
            found, digest, size = read_members(stream, password if written.encrypted else None)
        except IntegrityError as exc:
            raise IntegrityError(f"{where} was damaged on the way: {exc.message}.") from None
    if digest != written.sha256 or size != written.bytes:
        raise IntegrityError(f"{where} reads back as other bytes than were written (SHA-256 {digest[:12]}, "
                             f"{size} bytes; expected {written.sha256[:12]}, {written.bytes} bytes).")
    expected = _expected(snap)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    differ = sorted(p for p in expected if p in found and found[p] != expected[p])
    if missing or extra or differ:
        first = (missing or extra or differ)[0]
        raise IntegrityError(f"{where} does not match snapshot {snap.id[:8]}: {len(missing)} entries missing, "
                             f"{len(extra)} extra, {len(differ)} different (first: {first}).")


def publish_archive(repo: Repository, snap: Snapshot, dest: Backend, written: Written, level: int,
                    storage_class: str | None = None) -> ArchiveMeta:
    """Move the checked archive to its storage class, then write its metadata (the commit)."""
    apply_storage_class(dest, written.file, storage_class)
    content = sum(int(e.get("size") or 0) for e in snap.entries if e["type"] == "file")
    meta = ArchiveMeta(
        id=snap.id, file=written.file, sha256=written.sha256, bytes=written.bytes, files=written.files,
        content_bytes=content, type=snap.type, source=snap.source, host=snap.host, time=snap.time,
        archived_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), chain=snap.chain,
        parent=snap.parent, base_full=snap.base_full, tags=list(snap.tags), description=snap.description,
        author=snap.author, compression_level=level, storage_class=storage_class, encrypted=written.encrypted,
        repository=display_url(repo.url), repository_id=repo.config.id)
    publish(dest, meta)
    return meta


def published(dest: Backend, archive_id: str) -> ArchiveMeta | None:
    """The archive's metadata if it was published, else None."""
    try:
        return read_meta(dest, archive_id)
    except NotFound:
        return None


def _hash_of(stream: BinaryIO) -> str:
    reader = _HashingReader(stream)
    reader.drain()
    return reader.digest.hexdigest()


def verify_stored(dest: Backend, meta: ArchiveMeta) -> str | None:
    """Why the stored archive does not match its metadata, or None when it does. An archive
    in an offline class cannot be read without a restore request: its size is checked. An
    encrypted one is checked by its hash alone (no password needed)."""
    try:
        if is_offline(meta.storage_class):
            size = dest.stat(meta.file).size
            return None if size == meta.bytes else f"its size is {size} bytes, not {meta.bytes}"
        with open_reader(dest, meta.file) as stream:
            digest = _hash_of(stream) if meta.encrypted else read_members(stream)[1]
    except NotFound:
        return f"{meta.file} is missing"
    except IntegrityError as exc:
        return exc.message
    if digest != meta.sha256:
        return f"its SHA-256 is {digest[:16]}..., not {meta.sha256[:16]}... as recorded"
    return None


def sweep_destination(dest: Backend) -> int:
    """Delete what killed archive writes left at ``dest`` (temporary files on local disk whose
    writer is gone; a cloud upload leaves no object); returns how many."""
    dead = dead_temporaries(dest)
    for t in dead:
        dest.remove_temporary(t.name)
    return len(dead)
