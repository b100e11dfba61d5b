"""Export a snapshot as a standard ``.tar.gz`` that plain ``tar -xzf`` restores.

Content streams chunk by chunk from the repository into the archive, each chunk's hash
checked; nothing is staged on disk.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import tarfile

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from storage.errors import BackupError, InvalidInput, PermanentError
from storage.objects import Codec, pack_name, read_blob
from storage.repository.restore import ChunkLocator, select_entries
from storage.snapshots import Snapshot, TreeEntry

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


class _ChunkReader(io.RawIOBase):
    """A file-like view of one entry's content, read chunk by chunk."""

    def __init__(self, repo: Repository, codec: Codec, chunks: list[str], locator: ChunkLocator, path: str):
        self.repo, self.codec, self.chunks, self.locator, self.path = repo, codec, list(chunks), locator, path
        self.buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.buf and self.chunks:
            cid = self.chunks.pop(0)
            loc = self.locator.locate(cid, self.path)
            stored = self.repo.backend.load(pack_name(loc.pack), loc.offset, loc.length)
            self.buf = read_blob(self.codec, stored, loc, cid, self.path)
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


@dataclass
class ExportResult:
    snapshot_id: str
    file: str       # the archive's absolute path
    files: int      # regular files and hard links written
    bytes: int      # the archive's size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_snapshot(repo: Repository, snap: Snapshot, out_path: str,
                    include: list[str] | None = None) -> ExportResult:
    out = os.path.abspath(os.path.expanduser(out_path))
    if os.path.isdir(out):
        raise InvalidInput(f"{out_path} is a folder; give a file name ending in .tar.gz.")
    _check_folder(out, out_path)
    entries = select_entries(snap, include)
    locator = ChunkLocator(repo, snap)
    codec = repo.codec()
    tmp = out + ".part"
    try:
        files = _write_tar(repo, snap, entries, locator, codec, tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        # A damaged chunk or a full disk must not leave half an archive behind.
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, BackupError):
            raise _write_error(exc, out_path) from exc
        raise
    return ExportResult(snap.id, out, files, os.path.getsize(out))


def _check_folder(out: str, out_path: str) -> None:
    """InvalidInput when the archive's folder is missing or is a file, before any work."""
    folder = os.path.dirname(out)
    if os.path.isdir(folder):
        return
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if os.path.isdir(existing):
        raise InvalidInput(f"The folder {folder} for {out_path} does not exist; create it or give another path.")
    raise InvalidInput(f"{existing} is a file, not a folder, so {out_path} cannot be written; give another path.")


def _write_error(exc: OSError, out_path: str) -> BackupError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PermanentError(f"No space is left on the device holding {out_path}, so nothing was written "
                              "there; free some space or export to another disk.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentError(f"{out_path} cannot be written ({exc.strerror}); export to a folder you can write.")
    return PermanentError(f"Writing {out_path} failed ({exc.strerror or exc}); nothing was written there.")


def _write_tar(repo: Repository, snap: Snapshot, entries: list[TreeEntry], locator: ChunkLocator, codec: Codec,
               tmp: str) -> int:
    with open(tmp, "wb") as out:
        return _tar_into(repo, snap, entries, locator, codec, out, 6)


def write_tar_stream(repo: Repository, snap: Snapshot, out: Any, compresslevel: int = 6) -> int:
    """Write the whole snapshot as a gzip-compressed tar into the writable stream ``out``,
    front to back (no seeking, so ``out`` may be an upload); returns the files written."""
    return _tar_into(repo, snap, select_entries(snap, None), ChunkLocator(repo, snap),
                     repo.codec(), out, compresslevel)


def _tar_into(repo: Repository, snap: Snapshot, entries: list[TreeEntry], locator: ChunkLocator, codec: Codec,
              out: Any, compresslevel: int) -> int:
    files = 0
    # gzip around a streamed tar ("w|"): nothing seeks, so ``out`` may be an upload. The gzip
    # header carries no name and a fixed time, so the same snapshot gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", compresslevel=compresslevel, fileobj=out, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e["path"])
            ti.mode = e["mode"]
            ti.mtime = e["mtime_ns"] / 1e9
            if e["type"] == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif e["type"] == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
                tar.addfile(ti)
            elif e["type"] == "hardlink" and any(x["path"] == e["link"] for x in entries):
                ti.type = tarfile.LNKTYPE
                ti.linkname = e["link"]
                tar.addfile(ti)
                files += 1
            else:
                src = e if e["type"] == "file" else next(x for x in snap.entries if x["path"] == e["link"])
                ti.size = src["size"]
                content = _ChunkReader(repo, codec, src["chunks"], locator, e["path"])
                tar.addfile(ti, io.BufferedReader(content, 1 << 20))
                files += 1
    return files
