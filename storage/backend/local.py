"""Local-disk specifics: atomic, exclusive writes.

fsspec's local ``pipe_file`` writes in place, so a killed process could leave half an object
under its final name. Here every object is written to a temporary file in the same folder and
then hard-linked into place: ``link`` fails if the name exists (exclusive create) and the
object appears whole or not at all.
"""

from __future__ import annotations

import os
import uuid

from storage.backend.fsspec_backend import FsspecBackend
from storage.errors import BackupError


class LocalBackend(FsspecBackend):
    def _write(self, path: str, data: bytes) -> bool:
        """Write ``data`` under ``path``; False when another writer's object got there first."""
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False  # a concurrent writer won; save() compares its content with ours
            return True
        finally:
            os.unlink(tmp)

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        path = self._path(name)
        try:
            if exclusive and os.path.exists(path):
                self._check_same(name, data)
                return
            if not exclusive and os.path.exists(path):
                os.unlink(path)
            if not self._write(path, data) and exclusive:
                # Lost a race: the name now holds someone's object; it must be ours byte for byte
                # (comparing sizes alone let two different repository configs both "succeed").
                self._check_same(name, data)
        except BackupError:
            raise
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(name), "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def list(self, prefix: str = ""):
        for info in super().list(prefix):
            if not info.name.rsplit("/", 1)[-1].startswith(".tmp-"):
                yield info
