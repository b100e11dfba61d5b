"""Fault injection for the reliability tests: fail a fraction of calls with TransientError.

Failures are drawn from a seeded generator, so a failing test replays the same faults. Half
of the injected ``save`` failures happen *after* the object was stored, like an upload whose
reply was lost: that proves a retried save of identical content is harmless. (kopia
``internal/blobtesting/faulty.go``.)

Enabled by :func:`~storage.backend.factory.open_backend` with ``fault_rate=`` or, for a CLI
run in a test, the environment variable ``BACKUPFLOW_FAULT_RATE`` (``BACKUPFLOW_FAULT_SEED``
picks the seed; ``BACKUPFLOW_FAULT_LOG`` names a file that gets one line per injected fault, so
a test can prove faults happened inside a CLI subprocess). Never set these in production.
"""

from __future__ import annotations

import random
import threading
from typing import Iterator

from storage.backend.base import Backend, ObjectInfo, TemporaryInfo, load_into
from storage.errors import InvalidConfig, TransientError


class FaultyBackend:
    def __init__(self, inner: Backend, rate: float = 0.2, seed: int = 0, log_path: str | None = None):
        if not 0 <= rate < 1:
            raise InvalidConfig(f"The fault rate must be at least 0 and below 1, not {rate!r}.")
        self.inner = inner
        self.url = inner.url
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0  # how many faults were injected (tests assert some were)
        self._log_path = log_path

    def __repr__(self) -> str:
        return f"FaultyBackend({self.inner!r}, rate={self.rate})"

    def _roll(self) -> float | None:
        with self._lock:
            x = self._random.random()
            if x >= self.rate:
                return None
            self.injected += 1
            return x / self.rate  # uniform in [0, 1): where in the call the fault lands

    def _fail(self, what: str) -> TransientError:
        if self._log_path:
            with self._lock, open(self._log_path, "a") as log:
                log.write(what + "\n")
        return TransientError(f"Injected fault: {what} failed (connection reset).")

    # Streamed writes would bypass this wrapper, so it takes whole objects only.
    open_sink = None

    def temporaries(self) -> list[TemporaryInfo]:
        return self.inner.temporaries()

    def remove_temporary(self, name: str) -> None:
        self.inner.remove_temporary(name)

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        where = self._roll()
        if where is not None and where < 0.5:
            raise self._fail(f"save {name}")
        self.inner.save(name, data, exclusive)
        if where is not None:
            raise self._fail(f"save {name} (reply lost after the object was stored)")

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self._roll() is not None:
            raise self._fail(f"load {name}")
        return self.inner.load(name, offset, length)

    def load_into(self, name: str, offset: int, buffer) -> int:
        if self._roll() is not None:
            raise self._fail(f"load {name}")
        return load_into(self.inner, name, offset, buffer)

    def stat(self, name: str) -> ObjectInfo:
        if self._roll() is not None:
            raise self._fail(f"stat {name}")
        return self.inner.stat(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self._roll() is not None:
            raise self._fail(f"list {prefix}")
        return self.inner.list(prefix)

    def remove(self, name: str) -> None:
        # Only before the call: a retried remove of an object already gone raises NotFound by
        # contract, and deciding whether that is success belongs to the caller, not this test aid.
        if self._roll() is not None:
            raise self._fail(f"remove {name}")
        self.inner.remove(name)

    def close(self) -> None:
        self.inner.close()
