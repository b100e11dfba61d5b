"""Retry transient backend failures with exponential backoff, inside a bounded total time.

Only errors the backend classified as transient are retried (restic #1628 retried a missing
file thousands of times); a permanent or integrity error surfaces at once.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

from storage.backend.base import Backend, ObjectInfo, Sink, TemporaryInfo, display_url, innermost, load_into
from storage.errors import BackupError, Unreachable, is_retryable, no_answer

log = logging.getLogger("backupflow.backend")
T = TypeVar("T")
# Storage that gave no answer within its first-contact time, by endpoint: (when, the sentence). A
# command opens one repository several times (the audit mirror, then each task); each would
# wait the whole first-contact time again, so a backup to a dead endpoint said "within 20 s"
# after 67 s. Within a minute of the first verdict, later first contacts give it at once.
UNREACHABLE: dict[str, tuple[float, str]] = {}
UNREACHABLE_MEMORY_SECONDS = 60.0


class RetryBackend:
    def __init__(self, inner: Backend, max_seconds: float = 120.0, base_delay: float = 0.2, max_delay: float = 10.0,
                 endpoint_key: str | None = None):
        self.inner = inner
        # What names the endpoint for UNREACHABLE: the URL and how it was opened (the factory
        # hashes the options and the endpoint environment into it).
        self.endpoint_key = endpoint_key or inner.url
        self.url = inner.url
        self.max_seconds = max_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay

    @property
    def open_sink(self) -> Callable[[], Sink] | None:
        # Streamed writes go to the local disk, which has no transient errors to retry.
        return self.inner.open_sink

    def temporaries(self) -> list[TemporaryInfo]:
        return self.inner.temporaries()

    def remove_temporary(self, name: str) -> None:
        self.inner.remove_temporary(name)

    def _answered(self) -> bool:
        return getattr(innermost(self.inner), "answered", True)

    def _budget(self) -> float:
        # Until a cloud service has answered once, a failure is most likely a wrong endpoint or
        # a network that is down: report it within the backend's first-contact time, not after
        # the whole budget (storage.backend.object_store).
        if self._answered():
            return self.max_seconds
        return min(self.max_seconds, getattr(innermost(self.inner), "first_contact_seconds", self.max_seconds))

    def _deadline(self, started: float, budget: float) -> float:
        """Until first contact, the backend's own clock (which may have started with the
        command, before this call) bounds the retries too."""
        first_call_at = None if self._answered() else getattr(innermost(self.inner), "first_call_at", None)
        return started + budget if first_call_at is None else min(started + budget, first_call_at + budget)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        known = UNREACHABLE.get(self.endpoint_key)
        if known and not self._answered() and started - known[0] < UNREACHABLE_MEMORY_SECONDS:
            raise Unreachable(known[1])
        attempt = 0
        why = "no reply"
        while True:
            try:
                return fn()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                cause = exc.__cause__  # the SDK's error; ours (a call cut off at the time limit) has none
                if cause is not None and not isinstance(cause, BackupError):
                    why = type(cause).__name__
                attempt += 1
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + random.random())
                budget = self._budget()
                if time.monotonic() + delay > self._deadline(started, budget):
                    if not self._answered():
                        sentence = no_answer(display_url(self.url), budget, why)
                        UNREACHABLE[self.endpoint_key] = (time.monotonic(), sentence)
                        raise Unreachable(sentence) from exc
                    raise
                log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
                time.sleep(delay)

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        self._call(f"save {name}", lambda: self.inner.save(name, data, exclusive))

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"load {name}", lambda: self.inner.load(name, offset, length))

    def load_into(self, name: str, offset: int, buffer) -> int:
        return self._call(f"load {name}", lambda: load_into(self.inner, name, offset, buffer))

    def stat(self, name: str) -> ObjectInfo:
        return self._call(f"stat {name}", lambda: self.inner.stat(name))

    def list(self, prefix: str = ""):
        # A listing is materialised so that a retry never yields a name twice.
        return iter(self._call(f"list {prefix}", lambda: list(self.inner.list(prefix))))

    def remove(self, name: str) -> None:
        self._call(f"remove {name}", lambda: self.inner.remove(name))

    def close(self) -> None:
        self.inner.close()
