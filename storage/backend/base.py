"""The backend seam: the one interface between the engine and any storage.

Contracts every backend keeps (the conformance suite in tests/storage/backend checks them):

- Names are relative, ``/``-separated keys such as ``data/ab/abcd...``; the backend maps them
  onto its own location. Nothing above the seam assumes a local path.
- ``save(name, data, exclusive=True)`` is write-once: saving identical content to an existing
  name succeeds (idempotent, so a retried upload is harmless); saving different content raises
  :class:`~storage.errors.AlreadyExists`. A reader never sees a partially written object.
- ``load(name, offset, length)`` reads a byte range; ``length=None`` reads to the end.
  A missing object raises :class:`~storage.errors.NotFound`.
- ``list(prefix)`` yields every object under the prefix exactly once, however many there are.
- ``remove(name)`` deletes; removing a missing object raises NotFound.
- Optional capabilities are declared by every backend, with a "not here" value where it lacks
  them: ``open_sink`` is a factory of :class:`Sink` that streams one object to storage piece
  by piece and names it at the end, for objects named by their content hash (packs), or None
  where a backend takes whole objects only (all but local disk today). ``temporaries()`` lists
  what writes killed half-way left behind, each with its writer and age ([] where writes leave
  nothing behind), and ``remove_temporary(name)`` deletes one, so the next backup or prune
  removes what killed writers left.
- Backends translate their vendor exceptions into :mod:`storage.errors` and decide which are
  transient; retry layers above rely on that decision.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit


COMMAND_STARTED_ENV = "BACKUPFLOW_COMMAND_STARTED"  # time.time() when the person gave the command


def command_started() -> float | None:
    """When the running command began, as a ``time.monotonic()`` value, if the CLI said so
    (flows/cli sets the variable; its own start-up then counts in the first-contact time of
    cloud storage, storage.backend.object_store, as it does for the person waiting)."""
    try:
        wall = float(os.environ[COMMAND_STARTED_ENV])
    except (KeyError, ValueError):
        return None
    return time.monotonic() - (time.time() - wall)


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int


# Temporary files are named ``.tmp-<host tag>-<pid>-<random>``: who writes them, so a later
# process can tell a killed writer's leftovers from a live writer's file.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


@dataclass(frozen=True)
class TemporaryInfo(ObjectInfo):
    age: float = 0.0        # seconds since it was last written
    host: str | None = None  # host tag of its writer; None for names of older versions
    pid: int | None = None


@runtime_checkable
class Backend(Protocol):
    """A place that stores named, write-once byte objects."""

    url: str

    @property
    def open_sink(self) -> Callable[[], Sink] | None:
        """A factory of sinks, or None when this backend takes whole objects only."""

    def temporaries(self) -> list[TemporaryInfo]:
        """Temporary files of writes in progress or killed half-way; [] where writes leave none."""

    def remove_temporary(self, name: str) -> None:
        """Delete one of :meth:`temporaries` (gone already is fine)."""

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None: ...

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def remove(self, name: str) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """One object being written piece by piece; invisible to readers until ``commit``."""

    def write(self, data) -> None: ...

    def sha256(self) -> str:
        """The hex SHA-256 of everything written so far (to name a content-addressed object)."""

    def commit(self, name: str) -> None:
        """Store what was written under ``name``, with ``save``'s write-once semantics."""

    def abort(self) -> None: ...


def sink_for(backend: Backend) -> Callable[[], Sink] | None:
    """A factory of :class:`Sink` for ``backend``, or None when it only takes whole objects."""
    return backend.open_sink


def load_into(backend: Backend, name: str, offset: int, buffer) -> int:
    """Read up to ``len(buffer)`` bytes of ``name`` from ``offset`` into ``buffer`` (a writable
    buffer the caller reuses); returns how many were read (fewer at the object's end). Local
    disk reads straight into it; other backends load and copy."""
    direct = getattr(backend, "load_into", None)
    if direct is not None:
        return direct(name, offset, buffer)
    data = backend.load(name, offset, len(buffer))
    n = min(len(data), len(buffer))
    memoryview(buffer)[:n] = memoryview(data)[:n]
    return n


def innermost(backend: Backend) -> Backend:
    """The raw backend under the wrappers (retry, limits, faults), for housekeeping only."""
    while hasattr(backend, "inner"):
        backend = backend.inner
    return backend


def display_url(url: str) -> str:
    """The URL without credentials or query string, safe for logs and messages."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
