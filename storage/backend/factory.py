"""Build a backend from a URL: pick the implementation, then wrap it (retry, limits, read-only).

Wrappers are composed here and only here, so every caller gets the same stack.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable
from urllib.parse import urlsplit

from storage.backend.base import Backend
from storage.backend.credentials import refuse_option_credentials, refuse_url_credentials
from storage.backend.faulty import FaultyBackend
from storage.backend.fsspec_backend import FsspecBackend
from storage.backend.limiter import LimitedBackend, parse_rate
from storage.backend.local import LocalBackend
from storage.backend.memory import MemoryBackend
from storage.backend.retry import RetryBackend
from storage.errors import InvalidConfig

# Cloud modules register here: scheme -> callable(url, options) -> Backend.
PROVIDERS: dict[str, Callable[[str, dict[str, Any]], Backend]] = {}
# ... and are imported the first time one of their schemes is opened: each pulls in a cloud
# SDK, which a local backup (and every CLI start) need not pay for in time or memory.
PROVIDER_MODULES = {
    "s3": "storage.backend.s3",
    "az": "storage.backend.azure", "abfs": "storage.backend.azure", "abfss": "storage.backend.azure",
    "gs": "storage.backend.gcs", "gcs": "storage.backend.gcs",
}

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
    if scheme in PROVIDER_MODULES and scheme not in PROVIDERS:
        importlib.import_module(PROVIDER_MODULES[scheme])
    if scheme in PROVIDERS:
        return PROVIDERS[scheme](url, options)
    try:
        return FsspecBackend.from_url(url, options)
    except (ImportError, ValueError) as exc:
        raise InvalidConfig(f"The repository URL {url!r} uses a scheme backupflow cannot open ({exc}).") from exc


# Options that configure backupflow's wrappers rather than the filesystem. They may arrive
# inside the options (``--option upload_limit=20MiB/s``, or a flow parameter), which keeps
# every way of opening a repository plain data.
WRAPPER_OPTIONS = ("upload_limit", "download_limit", "first_contact_seconds")


def _open_configured(url: str, options: dict[str, Any] | None) -> tuple[Backend, dict[str, Any]]:
    """The raw backend, opened with the filesystem's options, and backupflow's own options."""
    refuse_url_credentials(url)
    refuse_option_credentials(options)
    options, ours = _split_options(options)
    backend = _open_raw(url, options)
    if "first_contact_seconds" in ours and hasattr(backend, "first_contact_seconds"):
        backend.first_contact_seconds = ours["first_contact_seconds"]
    return backend, ours


def _split_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the filesystem's options, backupflow's own) from one options mapping."""
    options = dict(options or {})
    ours = {k: options.pop(k) for k in WRAPPER_OPTIONS if k in options}
    if "first_contact_seconds" in ours:
        try:
            seconds = float(ours["first_contact_seconds"])
        except (TypeError, ValueError):
            seconds = 0.0
        if not seconds > 0:
            raise InvalidConfig(f"first_contact_seconds must be a number of seconds above 0, not "
                                f"{ours['first_contact_seconds']!r}.")
        ours["first_contact_seconds"] = seconds
    return options, ours


def open_backend(
    url: str,
    options: dict[str, Any] | None = None,
    *,
    retry_seconds: float = 120.0,
    upload_limit: str | float | None = None,
    download_limit: str | float | None = None,
    fault_rate: float | None = None,
    fault_seed: int | None = None,
) -> Backend:
    """Open ``url`` with fsspec ``options`` and the standard wrapper stack.

    The stack, inside out: the raw backend; fault injection (tests only: ``fault_rate`` or
    ``BACKUPFLOW_FAULT_RATE``), right on top of the raw backend so its faults look exactly like
    network faults; the bandwidth limiter (``upload_limit``/``download_limit``, e.g. "20MiB/s");
    and retry outermost, so that every retried attempt passes through the limiter again (a
    re-upload really uses the link again) and meets faults the way a real retry would.
    """
    backend, ours = _open_configured(url, options)
    upload_limit = ours.get("upload_limit") or upload_limit
    download_limit = ours.get("download_limit") or download_limit
    if fault_rate is None and os.environ.get("BACKUPFLOW_FAULT_RATE"):
        try:
            fault_rate = float(os.environ["BACKUPFLOW_FAULT_RATE"])
            fault_seed = int(os.environ.get("BACKUPFLOW_FAULT_SEED", "0")) if fault_seed is None else fault_seed
        except ValueError:
            raise InvalidConfig("BACKUPFLOW_FAULT_RATE and BACKUPFLOW_FAULT_SEED must be numbers; fix or unset them.") from None
    if fault_rate:
        backend = FaultyBackend(backend, fault_rate, fault_seed or 0, os.environ.get("BACKUPFLOW_FAULT_LOG"))
    up, down = parse_rate(upload_limit, "upload_limit"), parse_rate(download_limit, "download_limit")
    if up or down:
        backend = LimitedBackend(backend, up, down)
    if retry_seconds > 0:
        backend = RetryBackend(backend, max_seconds=retry_seconds)
    return backend


def ensure_container(url: str, options: dict[str, Any] | None = None) -> bool:
    """Create the bucket/container (or local folder) of ``url`` if missing; True if created.

    Used by ``backupflow init``. When it cannot be created (no permission, name taken), raises
    PermanentError naming the bucket and what to check.
    """
    backend, _ = _open_configured(url, options)
    try:
        create = getattr(backend, "ensure_container", None)
        if create is not None:
            return bool(create())
        if isinstance(backend, LocalBackend):
            existed = os.path.isdir(backend.root)
            os.makedirs(backend.root, exist_ok=True)
            return not existed
        return False
    finally:
        backend.close()
