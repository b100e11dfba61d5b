"""Streams of one large object, and its storage class: what the archive tier needs beyond the seam.

The seam (``base.py``) moves whole objects, which suits packs of a few MiB. An archive is one
``.tar.gz`` of a whole snapshot, possibly many GiB, so it is written and read as a stream
with bounded memory: on local disk through a temporary file renamed into place, on S3 as a
multipart upload, on Azure as staged blocks, on GCS as a resumable upload. In every case the
object appears whole at :meth:`ObjectWriter.commit` or not at all (an aborted or killed cloud
upload leaves no object; on S3 an incomplete multipart upload that a bucket lifecycle rule
removes).

Storage classes (the vocabulary of each store; local disk has none):

- S3 ``StorageClass``: classes readable on demand (``STANDARD_IA``, ``GLACIER_IR``...) are set
  on upload. ``GLACIER`` and ``DEEP_ARCHIVE`` objects cannot be read until restored, so the
  object is uploaded as ``STANDARD``, read back and checked, and only then moved to the class
  by an in-place server-side copy (:func:`apply_storage_class`).
- Azure blob tier (``Hot``, ``Cool``, ``Cold``, ``Archive``): set after the read-back check
  (an ``Archive`` blob cannot be read until rehydrated; adlfs has no tier on upload).
- GCS storage class (``STANDARD``, ``NEARLINE``, ``COLDLINE``, ``ARCHIVE``): set after the
  read-back check by an in-place rewrite (gcsfs has no class on upload).
"""

from __future__ import annotations

import io
import os
import uuid
from typing import Any, BinaryIO

from fsspec.asyn import sync

from storage.backend.base import HOST_TAG, Backend, display_url, innermost
from storage.backend.factory import scheme_of
from storage.backend.fsspec_backend import FsspecBackend
from storage.backend.local import LocalBackend
from storage.backend.memory import MemoryBackend
from storage.errors import BackupError, InvalidConfig, PermanentError

CLASSES = {
    "s3": ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"),
    "az": ("Hot", "Cool", "Cold", "Archive"),
    "gs": ("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"),
}
CLASSES["abfs"] = CLASSES["abfss"] = CLASSES["az"]
CLASSES["gcs"] = CLASSES["gs"]
# Classes whose objects cannot be read without a restore (rehydration) request first.
OFFLINE = {"GLACIER", "DEEP_ARCHIVE", "Archive"}
_S3_AFTER_CHECK = {"GLACIER", "DEEP_ARCHIVE"}


def check_storage_class(url: str, storage_class: str | None) -> str | None:
    """The store's own spelling of ``storage_class`` for ``url``, or InvalidConfig in one sentence."""
    if not storage_class:
        return None
    scheme = scheme_of(url)
    known = CLASSES.get(scheme)
    if known is None:
        raise InvalidConfig(f"{display_url(url)} has no storage classes; drop the storage class, or archive to "
                            "s3://, az:// or gs://.")
    for name in known:
        if name.lower() == str(storage_class).strip().lower():
            return name
    raise InvalidConfig(f"{storage_class!r} is not a storage class of {scheme}://; use one of {', '.join(known)}.")


def is_offline(storage_class: str | None) -> bool:
    return storage_class in OFFLINE


class ObjectWriter:
    """One object written piece by piece; readers see it only after :meth:`commit`."""

    def __init__(self, sink: Any, finish, discard):
        self._sink, self._finish, self._discard = sink, finish, discard
        self.done = False

    def write(self, data) -> int:
        self._sink.write(data)
        return len(data)

    def commit(self) -> None:
        self._finish()
        self.done = True

    def abort(self) -> None:
        if not self.done:
            self.done = True
            try:
                self._discard()
            except Exception:  # noqa: BLE001  (best effort: nothing was published either way)
                pass


def _path(raw: FsspecBackend, name: str) -> str:
    return f"{raw.root}/{name}" if raw.root else name


def _translate(raw: Backend, exc: BaseException, name: str) -> BackupError:
    if isinstance(raw, FsspecBackend):
        return raw._translate(exc, name)
    return PermanentError(f"Storage error while accessing {name} in {display_url(raw.url)}: {exc}")


def open_writer(backend: Backend, name: str, storage_class: str | None = None) -> ObjectWriter:
    """A writer of ``name`` that replaces any object of that name when it commits."""
    raw = innermost(backend)
    if isinstance(raw, MemoryBackend):
        buf = io.BytesIO()
        return ObjectWriter(buf, lambda: raw.save(name, buf.getvalue(), exclusive=False), lambda: None)
    if isinstance(raw, LocalBackend):
        return _local_writer(raw, name)
    if not isinstance(raw, FsspecBackend):
        raise PermanentError(f"{display_url(backend.url)} cannot take streamed objects.")
    extra: dict[str, Any] = {}
    if scheme_of(raw.url) == "s3" and storage_class and storage_class not in _S3_AFTER_CHECK:
        extra["StorageClass"] = storage_class
    try:
        f = raw.fs.open(_path(raw, name), "wb", **extra)
    except Exception as exc:
        raise _translate(raw, exc, name) from exc

    def finish() -> None:
        try:
            f.close()
        except Exception as exc:
            raise _translate(raw, exc, name) from exc

    def discard() -> None:
        if hasattr(f, "discard"):
            f.discard()
        f.closed = True  # closing would publish what was written so far

    return ObjectWriter(f, finish, discard)


def _local_writer(raw: LocalBackend, name: str) -> ObjectWriter:
    final = os.path.join(raw.root, *name.split("/"))
    folder = os.path.dirname(final)
    os.makedirs(folder, exist_ok=True)
    # The temporary name of the seam's own writes, so `temporaries()` finds what a kill left.
    tmp = os.path.join(folder, f".tmp-{HOST_TAG}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    f = open(tmp, "wb")

    def finish() -> None:
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, final)

    def discard() -> None:
        f.close()
        os.remove(tmp)

    return ObjectWriter(f, finish, discard)


def open_reader(backend: Backend, name: str) -> BinaryIO:
    """``name`` as a binary file object read in large blocks (not all at once)."""
    raw = innermost(backend)
    if isinstance(raw, MemoryBackend):
        return io.BytesIO(raw.load(name))
    if not isinstance(raw, FsspecBackend):
        raise PermanentError(f"{display_url(backend.url)} cannot stream objects.")
    raw.stat(name)  # NotFound, or the container's absence, as one sentence
    try:
        if isinstance(raw, LocalBackend):
            return open(os.path.join(raw.root, *name.split("/")), "rb")
        return raw.fs.open(_path(raw, name), "rb", block_size=8 << 20, cache_type="readahead")
    except Exception as exc:
        raise _translate(raw, exc, name) from exc


def apply_storage_class(backend: Backend, name: str, storage_class: str | None) -> None:
    """Move ``name`` to ``storage_class`` where that is not done on upload (see the module text)."""
    raw = innermost(backend)
    if not storage_class or not isinstance(raw, FsspecBackend):
        return
    scheme, path = scheme_of(raw.url), _path(raw, name)
    bucket, key = path.split("/", 1)
    try:
        if scheme == "s3" and storage_class in _S3_AFTER_CHECK:
            raw.fs.call_s3("copy_object", Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                           StorageClass=storage_class, MetadataDirective="COPY")
        elif scheme in ("az", "abfs", "abfss"):
            sync(raw.fs.loop, _set_blob_tier, raw.fs, bucket, key, storage_class)
        elif scheme in ("gs", "gcs"):
            raw.fs.call("POST", "b/{}/o/{}/rewriteTo/b/{}/o/{}", bucket, key, bucket, key,
                        json={"storageClass": storage_class}, json_out=True)
    except Exception as exc:
        raise _translate(raw, exc, name) from exc


async def _set_blob_tier(fs: Any, container: str, blob: str, tier: str) -> None:
    async with fs.service_client.get_blob_client(container, blob) as bc:
        await bc.set_standard_blob_tier(tier)


async def _blob_tier(fs: Any, container: str, blob: str) -> str | None:
    async with fs.service_client.get_blob_client(container, blob) as bc:
        props = await bc.get_blob_properties()
    return props.blob_tier


def storage_class_of(backend: Backend, name: str) -> str | None:
    """The class the store reports for ``name`` (None on local disk or where it reports none)."""
    raw = innermost(backend)
    if not isinstance(raw, FsspecBackend) or isinstance(raw, LocalBackend):
        return None
    scheme, path = scheme_of(raw.url), _path(raw, name)
    try:
        if scheme == "s3":
            bucket, key = path.split("/", 1)
            return raw.fs.call_s3("head_object", Bucket=bucket, Key=key).get("StorageClass") or "STANDARD"
        if scheme in ("az", "abfs", "abfss"):
            bucket, key = path.split("/", 1)
            tier = sync(raw.fs.loop, _blob_tier, raw.fs, bucket, key)
            return str(tier) if tier else None
        return raw.fs.info(path).get("storageClass")
    except Exception as exc:
        raise _translate(raw, exc, name) from exc
