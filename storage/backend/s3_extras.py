"""S3 features fsspec has no words for: storage class of packs, Object Lock, bucket creation.

Requests go through the botocore client s3fs already holds (``fs.call_s3``): the same
credentials, endpoint and retry settings as every other call, without resolving credentials a
second time through boto3.

- *Storage class* applies to pack objects (names under ``data/``), the bulk of a repository,
  e.g. ``STANDARD_IA`` or ``GLACIER_IR``. Metadata (index, snapshots, locks) stays STANDARD
  because it is small and read often. Classes that need a restore request before a read
  (GLACIER, DEEP_ARCHIVE) are refused: a backup you cannot read on demand is not one.
- *Object Lock* (``object_lock_days``) puts COMPLIANCE retention on every object that a restore
  needs (packs, index, snapshots, keys, config) and on the audit trail and approval policy
  (``audit/``, ``policy/``), so nobody, not even the account owner, can delete it before the
  date. Lock files stay deletable. The bucket must be created with Object Lock enabled
  (``create_bucket(..., object_lock=True)``, done by ``backupflow init``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from storage.errors import InvalidConfig
from storage import layout

PACK_PREFIX = layout.DATA
LOCKED_PREFIXES = (layout.DATA, layout.INDEX, layout.SNAPSHOTS, layout.KEYS, layout.CONFIG, layout.AUDIT,
                   layout.POLICY)
READABLE_CLASSES = {"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
                    "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE"}
ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}


@dataclass(frozen=True)
class S3ObjectPolicy:
    """Extra PUT parameters per object name."""

    storage_class: str | None = None
    lock_days: int | None = None
    lock_mode: str = "COMPLIANCE"

    @classmethod
    def from_options(cls, storage_class: Any = None, lock_days: Any = None, lock_mode: Any = None) -> "S3ObjectPolicy":
        sc = str(storage_class).strip().upper() if storage_class else None
        if sc in ARCHIVE_CLASSES:
            raise InvalidConfig(
                f"storage_class {sc} needs a restore request before objects can be read; "
                "use GLACIER_IR or STANDARD_IA for packs instead."
            )
        if sc is not None and sc not in READABLE_CLASSES:
            raise InvalidConfig(f"storage_class {sc!r} is not an S3 storage class; "
                                f"use one of {', '.join(sorted(READABLE_CLASSES))}.")
        days = None
        if lock_days not in (None, "", 0, "0"):
            try:
                days = int(lock_days)
            except (TypeError, ValueError):
                days = -1
            if days < 1:
                raise InvalidConfig("object_lock_days must be a whole number of days of at least 1, "
                                    f"not {lock_days!r}.")
        mode = str(lock_mode or "COMPLIANCE").upper()
        if mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise InvalidConfig(f"object_lock_mode must be COMPLIANCE or GOVERNANCE, not {lock_mode!r}.")
        return cls(sc, days, mode)

    @property
    def locks(self) -> bool:
        return bool(self.lock_days)

    def put_options(self, name: str) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.storage_class and name.startswith(PACK_PREFIX):
            extra["StorageClass"] = self.storage_class
        if self.lock_days and name.startswith(LOCKED_PREFIXES):
            until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=self.lock_days)
            extra["ObjectLockMode"] = self.lock_mode
            extra["ObjectLockRetainUntilDate"] = until
            # Object Lock PUTs must carry a checksum; botocore adds CRC32 when asked for one.
            extra["ChecksumAlgorithm"] = "CRC32"
        return extra


def create_bucket(fs: Any, bucket: str, region: str | None, object_lock: bool) -> None:
    """Create ``bucket`` in ``region`` (us-east-1 takes no location constraint), with Object Lock if asked."""
    params: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if object_lock:
        params["ObjectLockEnabledForBucket"] = True
    fs.call_s3("create_bucket", **params)


def object_version(fs: Any, bucket: str, key: str) -> str | None:
    head = fs.call_s3("head_object", Bucket=bucket, Key=key)
    return head.get("VersionId")


def delete_version(fs: Any, bucket: str, key: str, version: str | None) -> None:
    """Delete one object version for good (a plain DELETE on a versioned bucket only hides it)."""
    params = {"Bucket": bucket, "Key": key}
    if version:
        params["VersionId"] = version
    fs.call_s3("delete_object", **params)

