"""What S3, Azure Blob and GCS share above fsspec: conditional writes, bucket checks, error classes.

Vocabulary: a *container* is the S3/GCS bucket or Azure container, the first path segment of
the repository URL.

- Exclusive create is one conditional write (S3 ``If-None-Match: *``, Azure ``overwrite=False``,
  GCS ``ifGenerationMatch=0``, all reached through fsspec's ``mode="create"``). When the store
  refuses because the name exists, the stored bytes are compared with ours: identical content
  is a harmless retry, different content is :class:`AlreadyExists`. A new object costs one
  request; a repeated save (rare: only after a failure) costs a download.
- Object stores cannot tell "no such key" from "no such bucket" cheaply on every call, so the
  first NotFound (or empty listing) of a backend instance checks that the container exists
  once. A missing container is a :class:`PermanentError` naming it, never an empty repository.
- Vendor errors are classified by HTTP status where the SDK exposes one: 401/403 permanent,
  408/429/5xx transient; connection resets and timeouts are transient.
- First contact: until the service has answered once (anything, even "not found"), each call
  is cut off after ``first_contact_seconds`` (fsspec's own call timeout) and the retry layer
  gives up after as long (:mod:`storage.backend.retry`). The SDKs retry a refused connection
  for 4-80 s per call on their own, which would leave a wrong endpoint or a network that is
  down unreported for minutes; the cut-off reports it within ``first_contact_seconds``. Once
  the service has answered, failures are retried for the full budget: a blip in the middle of
  a long backup is survived, a mistyped endpoint is reported while the person is still waiting.
  The person's clock starts when they gave the command, not at the first request (Prefect's
  start-up and the flow run's creation come before it): a command declares its start with
  :func:`storage.backend.base.command_started`, and backends first used soon after it count
  from there.
"""

from __future__ import annotations

import errno
import time
from typing import Any, Callable, Iterable, Iterator

import fsspec
from fsspec.exceptions import FSTimeoutError

from storage.backend.base import ObjectInfo, command_started, display_url
from storage.backend.credentials import redact_options
from storage.backend.fsspec_backend import ErrorMap, FsspecBackend
from storage.errors import (
    AlreadyExists, BackupError, InvalidConfig, NotFound, PermanentError, TransientError, no_answer,
)

# Exception class names (anywhere in an error's cause chain or MRO) that mean the network, not
# the request, failed. Matched by name so this module needs neither aiohttp nor the SDKs.
TRANSIENT_CLASS_NAMES = {
    "ClientConnectionError", "ClientConnectorError", "ServerDisconnectedError", "ClientPayloadError",
    "ClientOSError", "ServerTimeoutError", "ConnectionClosedError", "EndpointConnectionError",
    "ReadTimeoutError", "ConnectTimeoutError", "ServiceRequestError", "ServiceResponseError",
    "IncompleteReadError", "ResponseStreamingError", "ConnectionError", "ReadTimeout", "Timeout",
    "ChunkedEncodingError", "ProxyError", "TransportError",
}
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
FIRST_CONTACT_SECONDS = 20.0
def _first_call_origin(first_contact_seconds: float) -> float:
    """When a backend's first-contact time starts: with the command, if it began less than
    half that time ago; otherwise (a restore that waited for an approval) now."""
    now, started = time.monotonic(), command_started()
    if started is not None and 0 <= now - started < first_contact_seconds / 2:
        return started
    return now
# The fsspec calls the object-store backends make; all are synchronous wrappers of the
# filesystems' async methods, which take fsspec's ``timeout`` (and cancel the call on expiry).
_TIMED_CALLS = frozenset({"cat_file", "pipe_file", "info", "find", "exists", "rm_file", "mkdir", "call_s3"})


def cause_chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_network_failure(exc: BaseException) -> bool:
    for e in cause_chain(exc):
        if any(cls.__name__ in TRANSIENT_CLASS_NAMES for cls in type(e).__mro__):
            return True
        if isinstance(e, (TimeoutError, ConnectionError)):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.ECONNREFUSED):
            return True
    return False


def classify_status(status: int | None, code: str, where: str, check: str) -> BackupError | None:
    """Map an HTTP status (and vendor error code) to our error, or None if it says nothing."""
    if status is None:
        return None
    label = str(status) if code in ("", str(status)) else f"{status} {code}"
    if status == 404:
        return NotFound(f"{where} does not exist.")
    if status in (401, 403):
        return PermanentError(f"Access to {where} was refused ({label}); check {check}.")
    if status in TRANSIENT_STATUS or status >= 500:
        return TransientError(f"The storage service failed while accessing {where} ({label}); "
                              "it may succeed on a retry.")
    return None


def open_filesystem(url: str, options: dict[str, Any], example: str, check: str) -> tuple[Any, str]:
    """The fsspec filesystem and root for ``url``, uncached; bad options are a config error.

    ``skip_instance_cache`` and no listings cache: a cached filesystem or listing made before
    another process wrote an object would hide it (s3fs #851, DVC #5668).
    """
    opts = dict(options)
    opts["skip_instance_cache"] = True
    opts["use_listings_cache"] = False
    try:
        fs, root = fsspec.core.url_to_fs(url, **opts)
    except (TypeError, ValueError) as exc:
        # The exception text may quote option values (credentials), so it is not repeated.
        raise InvalidConfig(
            f"The options for {display_url(url)} were not accepted ({type(exc).__name__}); "
            f"check the --option names: {', '.join(sorted(redact_options(opts)))}."
        ) from None
    except Exception as exc:  # credential lookups some clients make while connecting
        raise PermanentError(
            f"Could not connect to {display_url(url)} ({type(exc).__name__}); check {check}."
        ) from None
    root = root.strip("/")
    if not root:
        raise InvalidConfig(f"The repository URL {display_url(url)} names no bucket; write it as {example}.")
    return fs, root


class _FirstContact:
    """Stands in for the filesystem until the service has answered once (see the module text)."""

    def __init__(self, backend: "ObjectStoreBackend"):
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        backend = self._backend
        attr = getattr(backend._raw_fs, name)
        if name not in _TIMED_CALLS or backend.answered:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            if backend.first_call_at is None:
                backend.first_call_at = _first_call_origin(backend.first_contact_seconds)
            # What is left of the first-contact time: retried calls share it.
            left = backend.first_contact_seconds - (time.monotonic() - backend.first_call_at)
            try:
                result = attr(*args, timeout=max(1.0, left), **kwargs)
            except FSTimeoutError:
                raise TransientError(no_answer(display_url(backend.url), backend.first_contact_seconds,
                                               "no reply")) from None
            except Exception as exc:
                if not is_network_failure(exc):
                    backend.answered = True  # "not found", "forbidden"...: the service is there
                raise
            backend.answered = True
            return result

        return timed


class ObjectStoreBackend(FsspecBackend):
    """An fsspec backend on an object store whose first path segment is the container."""

    #: What the user should check when access is refused, e.g. "the AWS credentials ...".
    credentials_hint = "the credentials and the bucket permissions"
    container_word = "bucket"

    def __init__(self, url: str, fs: Any, root: str, error_map: ErrorMap | None = None,
                 put_options: Callable[[str], dict[str, Any]] | None = None,
                 first_contact_seconds: float = FIRST_CONTACT_SECONDS):
        #: False until the service has answered a call; read by the retry layer too.
        self.answered = False
        self.first_contact_seconds = first_contact_seconds
        self.first_call_at: float | None = None
        self._first_contact = _FirstContact(self)
        super().__init__(url, fs, root, error_map)
        self.container = self.root.split("/", 1)[0]
        self._container_seen = False
        self._put_options = put_options or (lambda name: {})

    @property
    def fs(self) -> Any:
        return self._raw_fs if self.answered else self._first_contact

    @fs.setter
    def fs(self, value: Any) -> None:
        self._raw_fs = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({display_url(self.url)!r})"

    # --- container -----------------------------------------------------------------------
    def container_exists(self) -> bool:
        return bool(self.fs.exists(self.container))

    def missing_container_error(self) -> PermanentError:
        return PermanentError(
            f"The {self.container_word} '{self.container}' of {display_url(self.url)} does not exist or these "
            f"credentials cannot see it; create it with `backupflow init`, or check the {self.container_word} "
            f"name and {self.credentials_hint}."
        )

    def _check_container(self) -> None:
        """Raise PermanentError if the container is missing; checked once per instance."""
        if self._container_seen:
            return
        try:
            exists = self.container_exists()
        except Exception as exc:
            raise super()._translate(exc, self.container) from exc
        if not exists:
            raise self.missing_container_error()
        self._container_seen = True

    def ensure_container(self) -> bool:
        """Create the container if it is missing; True if it was created."""
        try:
            if self.container_exists():
                self._container_seen = True
                return False
            self.create_container()
        except BackupError:
            raise
        except Exception as exc:
            raise PermanentError(
                f"The {self.container_word} '{self.container}' of {display_url(self.url)} is missing and could not be "
                f"created ({type(exc).__name__}); create it yourself, or check {self.credentials_hint}."
            ) from exc
        self._container_seen = True
        return True

    def create_container(self) -> None:
        self.fs.mkdir(self.container)

    # --- the seam ------------------------------------------------------------------------
    def save(self, name: str, data: bytes, exclusive: bool = True) -> None:
        path = self._path(name)
        extra = self._put_options(name)
        try:
            if exclusive:
                try:
                    self.fs.pipe_file(path, bytes(data), mode="create", **extra)
                except FileExistsError:
                    self._check_same(name, data)
            else:
                self.fs.pipe_file(path, bytes(data), **extra)
        except BackupError:
            raise
        except Exception as exc:
            mapped = self._translate(exc, name)
            if isinstance(mapped, NotFound):  # writing into a missing container
                self._check_container()
            raise mapped from exc

    def _check_same(self, name: str, data: bytes) -> None:
        if self.stat(name).size != len(data) or self.load(name) != bytes(data):
            raise AlreadyExists(f"{name} already exists in {display_url(self.url)} with other content.")

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            return super().load(name, offset, length)
        except NotFound:
            self._check_container()
            raise

    def stat(self, name: str) -> ObjectInfo:
        try:
            return super().stat(name)
        except NotFound:
            self._check_container()
            raise

    def remove(self, name: str) -> None:
        try:
            super().remove(name)
        except NotFound:
            self._check_container()
            raise

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        empty = True
        for info in super().list(prefix):
            empty = False
            yield info
        if empty:
            self._check_container()
