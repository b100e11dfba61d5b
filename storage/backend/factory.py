"""Build a backend from a URL: pick the implementation, then wrap it (retry, limits, read-only).

Wrappers are composed here and only here, so every caller gets the same stack.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import json
import os
from typing import Any, Callable
from urllib.parse import urlsplit

import fsspec

from storage.backend.base import Backend, display_url
from storage.backend.credentials import refuse_option_credentials, refuse_url_credentials
from storage.backend.faulty import FaultyBackend
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
# Options a cloud module takes itself, beyond its fsspec filesystem's (registered by the module).
PROVIDER_OPTIONS: dict[str, frozenset[str]] = {}
# Every fsspec filesystem takes these (instance and listings caches).
FSSPEC_COMMON_OPTIONS = frozenset({"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths"})
# A repository lives on local disk or one of the clouds; memory:// lives only as long as the
# process that opened it (engine tests, Python callers), so a command must refuse it: it would
# report a snapshot saved that is gone when the command ends.
PERSISTENT_SCHEMES = frozenset({"file", *PROVIDER_MODULES})

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
    _load_provider(scheme)
    return PROVIDERS[scheme](url, options)


def _load_provider(scheme: str) -> None:
    if scheme in PROVIDER_MODULES and scheme not in PROVIDERS:
        importlib.import_module(PROVIDER_MODULES[scheme])


def check_repository_url(url: str, persistent: bool = False) -> str:
    """The scheme of ``url`` if a repository can live there, else InvalidConfig in one sentence.

    Other fsspec schemes (ftp, http, sftp...) are refused before anything connects: none of
    them gives the write-once, exclusive-create objects the format relies on. ``persistent``
    (the CLI, deployments) also refuses memory://, which ends with the process."""
    scheme = scheme_of(url)
    if scheme in PERSISTENT_SCHEMES or (scheme == "memory" and not persistent):
        return scheme
    where = display_url(url)
    if scheme == "memory":
        raise InvalidConfig(f"{where} keeps the repository in this process's memory, so nothing would outlive the "
                            "command; use a local path, s3://, az:// or gs://.")
    hint = (" (for an S3-compatible server at that address, use s3://BUCKET/PATH with --option endpoint_url=...)"
            if scheme in ("http", "https") else "")
    raise InvalidConfig(f"backupflow cannot keep a repository at {where}: {scheme}:// is not supported; use a "
                        f"local path, s3://, az://, abfs:// or gs://{hint}.")


def _filesystem_options(scheme: str) -> set[str]:
    """The keyword names the scheme's fsspec filesystem declares (walking up while an
    ``__init__`` passes ``**kwargs`` on), so a misspelt option is caught rather than ignored."""
    if scheme == "memory":
        return set()
    names: set[str] = set()
    for cls in fsspec.get_filesystem_class(scheme).__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names | FSSPEC_COMMON_OPTIONS


def check_option_names(url: str, options: dict[str, Any]) -> None:
    """InvalidConfig naming every option the repository's backend does not know."""
    scheme = check_repository_url(url)
    _load_provider(scheme)
    known = set(WRAPPER_OPTIONS) | PROVIDER_OPTIONS.get(scheme, frozenset()) | _filesystem_options(scheme)
    unknown = sorted(k for k in options if k not in known)
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(repr(k) for k in unknown)
    raise InvalidConfig(f"Unknown option {names} for {display_url(url)}{hint}; backupflow does not ignore options it "
                        "does not know: fix or remove it (--option, or [backup] options in the config).")


# Options that configure backupflow's wrappers rather than the filesystem. They may arrive
# inside the options (``--option upload_limit=20MiB/s``, or a flow parameter), which keeps
# every way of opening a repository plain data.
WRAPPER_OPTIONS = ("upload_limit", "download_limit", "first_contact_seconds")


def _open_configured(url: str, options: dict[str, Any] | None) -> tuple[Backend, dict[str, Any]]:
    """The raw backend, opened with the filesystem's options, and backupflow's own options."""
    refuse_url_credentials(url)
    refuse_option_credentials(options)
    options, ours = _split_options(options)
    check_option_names(url, options)
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
            raise InvalidConfig("BACKUPFLOW_FAULT_RATE and BACKUPFLOW_FAULT_SEED must be numbers; "
                                "fix or unset them.") from None
    if fault_rate:
        backend = FaultyBackend(backend, fault_rate, fault_seed or 0, os.environ.get("BACKUPFLOW_FAULT_LOG"))
    up, down = parse_rate(upload_limit, "upload_limit"), parse_rate(download_limit, "download_limit")
    if up or down:
        backend = LimitedBackend(backend, up, down)
    if retry_seconds > 0:
        backend = RetryBackend(backend, max_seconds=retry_seconds, endpoint_key=_endpoint_key(url, options))
    return backend


# The environment that can move a cloud URL to another endpoint or account.
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING",
                 "AZURE_STORAGE_ACCOUNT_NAME")


def _endpoint_key(url: str, options: dict[str, Any] | None) -> str:
    """The URL plus a hash of what else says where it is (options may hold credentials)."""
    where = json.dumps([options or {}, [os.environ.get(k) for k in _ENDPOINT_ENV]], sort_keys=True, default=str)
    return f"{url}#{hashlib.sha256(where.encode()).hexdigest()[:16]}"


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
