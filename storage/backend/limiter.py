"""Bandwidth limits: cap upload and download rates (``upload_limit = "20MiB/s"``).

Each direction has one schedule shared by every thread: a transfer of ``n`` bytes books the
next ``n / rate`` seconds of the link and waits until its booking ends before it starts, so
the bytes moved by any moment never exceed ``rate * elapsed``, whatever the number of
connections. The limit applies per object: a 16 MiB pack at 1 MiB/s waits 16 s and then goes
at full speed, which averages out to the limit over a window of a few objects.
(restic ``internal/backend/limiter``; kopia ``blob/throttling``.)
"""

from __future__ import annotations

import re
import threading
import time
from typing import Iterator

from storage.backend.base import Backend, ObjectInfo, TemporaryInfo, load_into
from storage.errors import InvalidConfig

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)\s*(?:/\s*s|ps)?\s*$", re.IGNORECASE)


def parse_rate(value: str | int | float | None, setting: str = "limit") -> float | None:
    """Bytes per second from ``"20MiB/s"``, ``"500 KB/s"``, ``"1.5M"`` or a number; None = unlimited."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "unlimited", "0")):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = float(value)
    else:
        m = _RATE.match(str(value))
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise InvalidConfig(
                f"{setting} {value!r} is not a transfer rate; write it like \"20MiB/s\", \"500KB/s\" or \"1GiB/s\"."
            )
        rate = float(m.group(1)) * _UNITS[unit]
    if rate <= 0:
        return None
    if rate < 1024:
        raise InvalidConfig(f"{setting} {value!r} is below 1 KiB/s; backups would never finish. Use a larger rate.")
    return rate


class _Schedule:
    """One direction's link: who may send how many bytes when."""

    def __init__(self, rate: float):
        self.rate = rate
        self._free_at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Book ``n`` bytes and wait until the link has carried them (pay before you send)."""
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + n / self.rate
            wait = self._free_at - now
        if wait > 0:
            time.sleep(wait)


class LimitedBackend:
    """Wraps a backend so uploads (save) and downloads (load) stay under their rates."""

    def __init__(self, inner: Backend, upload: float | None = None, download: float | None = None):
        self.inner = inner
        self.url = inner.url
        self._up = _Schedule(upload) if upload else None
        self._down = _Schedule(download) if download else None

    def __repr__(self) -> str:
        return f"LimitedBackend({self.inner!r})"

    # Streamed writes would bypass this wrapper, so it takes whole objects only.
    open_sink = None

    def temporaries(self) -> list[TemporaryInfo]:
        return self.inner.temporaries()

    def remove_temporary(self, name: str) -> None:
        self.inner.remove_temporary(name)

    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        if self._up:
            self._up.take(len(data))
        self.inner.save(name, data, exclusive)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self._down and length is not None:
            self._down.take(length)  # book before the transfer when the size is known
            return self.inner.load(name, offset, length)
        data = self.inner.load(name, offset, length)
        if self._down:
            self._down.take(len(data))  # size known only afterwards: delay the next transfer
        return data

    def load_into(self, name: str, offset: int, buffer) -> int:
        if self._down:
            self._down.take(len(buffer))
        return load_into(self.inner, name, offset, buffer)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def remove(self, name: str) -> None:
        self.inner.remove(name)

    def close(self) -> None:
        self.inner.close()
