"""Build a backend from a URL: pick the implementation, then wrap it (retry, limits, read-only).

Wrappers are composed here and only here, so every caller gets the same stack.
"""

from __future__ import annotations

import os
from typing import Any, Callable
from urllib.parse import urlsplit

from storage.backend.base import Backend
from storage.backend.fsspec_backend import FsspecBackend
from storage.backend.local import LocalBackend
from storage.backend.memory import MemoryBackend
from storage.backend.retry import RetryBackend
from storage.errors import InvalidConfig

# Cloud modules register here: scheme -> callable(url, options) -> Backend.
PROVIDERS: dict[str, Callable[[str, dict[str, Any]], Backend]] = {}

_MEMORY: dict[str, MemoryBackend] = {}


def scheme_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:
        return "file"
    return parts.scheme.lower()


def _open_raw(url: str, options: dict[str, Any]) -> Backend:
    scheme = scheme_of(url)
    if scheme == "memory":
        # One store per URL within this process, so a test can open the same memory
        # repository twice; different URLs never share objects.
        return _MEMORY.setdefault(url, MemoryBackend(url))
    if scheme == "file":
        path = url[len("file://"):] if url.startswith("file://") else url
        path = os.path.abspath(os.path.expanduser(path))
        return LocalBackend.from_url(path, options)
    if scheme in PROVIDERS:
        return PROVIDERS[scheme](url, options)
    try:
        return FsspecBackend.from_url(url, options)
    except (ImportError, ValueError) as exc:
        raise InvalidConfig(f"The repository URL {url!r} uses a scheme backupflow cannot open ({exc}).") from exc


def open_backend(url: str, options: dict[str, Any] | None = None, *, retry_seconds: float = 120.0) -> Backend:
    """Open ``url`` with fsspec ``options`` and the standard wrapper stack."""
    backend = _open_raw(url, dict(options or {}))
    if retry_seconds > 0:
        backend = RetryBackend(backend, max_seconds=retry_seconds)
    return backend
