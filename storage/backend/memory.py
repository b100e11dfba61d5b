"""An in-memory backend: one private store per instance (never a shared global one).

Used by engine tests and by anything that wants a scratch repository. It keeps the same
contracts as every other backend, so tests on it mean something.
"""

from __future__ import annotations

import bisect
import threading
from typing import Iterator

from storage.backend.base import ObjectInfo, TemporaryInfo
from storage.errors import AlreadyExists, NotFound


class MemoryBackend:
    open_sink = None  # whole objects only, and nothing is ever half-written

    def temporaries(self) -> list[TemporaryInfo]:
        return []

    def remove_temporary(self, name: str) -> None:
        pass

    def __init__(self, url: str = "memory://"):
        self.url = url
        self._objects: dict[str, bytes] = {}
        # The names in order, so a listing of one prefix costs what it returns, as on a real
        # store (a folder, a prefix query), not a pass over every object.
        self._names: list[str] = []
        self._lock = threading.Lock()

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        data = bytes(data)
        with self._lock:
            old = self._objects.get(name)
            if exclusive and old is not None and old != data:
                raise AlreadyExists(f"{name} already exists in {self.url} with other content.")
            if old is None:
                bisect.insort(self._names, name)
            self._objects[name] = data

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise NotFound(f"{name} does not exist in {self.url}.")
        end = None if length is None else offset + length
        return data[offset:end]

    def stat(self, name: str) -> ObjectInfo:
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise NotFound(f"{name} does not exist in {self.url}.")
        return ObjectInfo(name, len(data))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            start = bisect.bisect_left(self._names, prefix)
            end = bisect.bisect_left(self._names, prefix + "\U0010ffff") if prefix else len(self._names)
            items = [(n, len(self._objects[n])) for n in self._names[start:end]]
        for name, size in items:
            yield ObjectInfo(name, size)

    def remove(self, name: str) -> None:
        with self._lock:
            if self._objects.pop(name, None) is None:
                raise NotFound(f"{name} does not exist in {self.url}.")
            del self._names[bisect.bisect_left(self._names, name)]

    def close(self) -> None:
        pass
