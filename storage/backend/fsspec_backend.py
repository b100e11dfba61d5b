"""The fsspec implementation of the backend seam: local disk, S3, Azure, GCS, anything fsspec opens.

Per-cloud modules only choose options and translate vendor errors (``error_map``); the
read/write logic is written once here. Filesystems are opened with ``skip_instance_cache``
and without listings caches: a cached listing made before another process wrote an object
would hide it (s3fs #851, DVC #5668).
"""

from __future__ import annotations

import errno
from typing import Any, Callable, Iterator

import fsspec

from storage.backend.base import ObjectInfo, Sink, TemporaryInfo, display_url
from storage.errors import AlreadyExists, BackupError, NotFound, PermanentError, TransientError

ErrorMap = Callable[[BaseException, str], BackupError | None]

_TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ETIMEDOUT, errno.EAGAIN, errno.ECONNREFUSED, errno.EPIPE}


def default_error_map(exc: BaseException, where: str) -> BackupError | None:
    """Classify the errors that every fsspec filesystem raises alike."""
    if isinstance(exc, BackupError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{where} does not exist.")
    if isinstance(exc, FileExistsError):
        return AlreadyExists(f"{where} already exists.")
    if isinstance(exc, PermissionError):
        return PermanentError(f"Access to {where} was refused; check the credentials and permissions.")
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return TransientError(f"The connection failed while accessing {where}: {exc}")
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"The connection failed while accessing {where}: {exc}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return PermanentError(f"No space is left on the device holding {where}.")
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return PermanentError(f"Writing {where} went past the largest file this file system or a limit on "
                              "this process (ulimit -f) allows; lower pack_size_mib or lift the limit.")
    return None


class FsspecBackend:
    """A backend on ``fs`` rooted at ``root`` (a path inside the filesystem, no protocol)."""

    # Whole objects only, and a write killed half-way leaves nothing visible (LocalBackend
    # overrides both).
    open_sink: Callable[[], Sink] | None = None

    def temporaries(self) -> list[TemporaryInfo]:
        return []

    def remove_temporary(self, name: str) -> None:
        pass

    def __init__(self, url: str, fs: Any, root: str, error_map: ErrorMap | None = None):
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self._error_map = error_map

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any] | None = None, error_map: ErrorMap | None = None):
        opts = dict(options or {})
        opts.setdefault("skip_instance_cache", True)
        fs, root = fsspec.core.url_to_fs(url, **opts)
        return cls(url, fs, root, error_map)

    # --- helpers -------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return f"{self.root}/{name}" if self.root else name

    def _translate(self, exc: BaseException, name: str) -> BackupError:
        if isinstance(exc, BackupError):  # already ours (e.g. the first-contact timeout)
            return exc
        where = f"{name} in {display_url(self.url)}"
        mapped = None
        if self._error_map is not None:
            mapped = self._error_map(exc, where)
        if mapped is None:
            mapped = default_error_map(exc, where)
        if mapped is None:
            mapped = PermanentError(f"Storage error while accessing {where}: {type(exc).__name__}: {exc}")
        return mapped

    # --- the seam ------------------------------------------------------------------------
    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        path = self._path(name)
        try:
            if exclusive and self.fs.exists(path):
                self._check_same(name, data)
                return
            self._write(path, data)
        except BackupError:
            raise
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def _write(self, path: str, data: bytes) -> bool:
        """Write ``data`` under ``path``; True when it was written (see LocalBackend)."""
        parent = path.rsplit("/", 1)[0]
        if parent and parent != path:
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(path, bytes(data))
        return True

    def _check_same(self, name: str, data: bytes) -> None:
        if self.stat(name).size != len(data) or self.load(name) != bytes(data):
            raise AlreadyExists(f"{name} already exists in {display_url(self.url)} with other content.")

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            if offset == 0 and length is None:
                return self.fs.cat_file(path)
            end = None if length is None else offset + length
            data = self.fs.cat_file(path, start=offset, end=end)
        except Exception as exc:
            raise self._translate(exc, name) from exc
        return data

    def stat(self, name: str) -> ObjectInfo:
        try:
            info = self.fs.info(self._path(name))
        except Exception as exc:
            raise self._translate(exc, name) from exc
        if info.get("type") == "directory":
            raise NotFound(f"{name} does not exist in {display_url(self.url)}.")
        return ObjectInfo(name, int(info.get("size") or 0))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # List the deepest directory the prefix names, then filter: object stores list flat
        # keys quickly, and a local tree of fan-out folders is walked once.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(base) if base else self.root
        try:
            found = self.fs.find(top, detail=True, withdirs=False)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._translate(exc, prefix or "/") from exc
        strip = len(self.root) + 1 if self.root else 0
        seen = set()
        for path in sorted(found):
            info = found[path]
            if info.get("type") == "directory":
                continue
            name = path[strip:] if strip else path
            name = name.lstrip("/")
            if not name.startswith(prefix) or name in seen:
                continue
            seen.add(name)
            yield ObjectInfo(name, int(info.get("size") or 0))

    def remove(self, name: str) -> None:
        path = self._path(name)
        try:
            if not self.fs.exists(path):
                raise NotFound(f"{name} does not exist in {display_url(self.url)}.")
            self.fs.rm_file(path)
        except BackupError:
            raise
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def close(self) -> None:
        pass
