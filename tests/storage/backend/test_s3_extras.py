"""S3 storage class of packs and Object Lock retention, on moto_server."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from storage.backend import ensure_container, open_backend
from storage.errors import InvalidConfig, PermanentError


def test_packs_get_the_storage_class_and_metadata_stays_standard(s3_server):
    dest = s3_server.new_destination()
    backend = open_backend(dest.url, {**dest.options, "storage_class": "standard_ia"})
    backend.save("data/ab/abcdef", b"pack bytes")
    backend.save("index/0001", b"index bytes")
    admin = s3_server.client()
    assert admin.head_object(Bucket=dest.bucket, Key="repo/data/ab/abcdef")["StorageClass"] == "STANDARD_IA"
    assert admin.head_object(Bucket=dest.bucket, Key="repo/index/0001").get("StorageClass", "STANDARD") == "STANDARD"
    assert backend.load("data/ab/abcdef") == b"pack bytes"


@pytest.mark.parametrize("value", ["GLACIER", "DEEP_ARCHIVE", "COLD"])
def test_unreadable_or_unknown_storage_classes_are_refused(s3_server, value):
    dest = s3_server.new_destination()
    with pytest.raises(InvalidConfig) as info:
        open_backend(dest.url, {**dest.options, "storage_class": value})
    assert value in info.value.message and "GLACIER_IR" in info.value.message


def test_object_lock_keeps_a_pack_from_being_deleted(s3_server):
    dest = s3_server.new_destination(create=False)
    options = {**dest.options, "object_lock_days": "2"}
    assert ensure_container(dest.url, options) is True  # created with Object Lock enabled
    backend = open_backend(dest.url, options)
    backend.save("data/cd/cdef01", b"immutable pack")
    backend.save("locks/backup-1", b"lock")

    with pytest.raises(PermanentError) as info:
        backend.remove("data/cd/cdef01")
    assert "Object Lock" in info.value.message and "data/cd/cdef01" in info.value.message
    assert backend.load("data/cd/cdef01") == b"immutable pack"
    assert [i.name for i in backend.list("data/")] == ["data/cd/cdef01"]

    admin = s3_server.client()
    key = "repo/data/cd/cdef01"
    head = admin.head_object(Bucket=dest.bucket, Key=key)  # (moto 5.2 answers 500 to GetObjectRetention)
    version = head["VersionId"]
    assert head["ObjectLockMode"] == "COMPLIANCE"
    days = (head["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.timezone.utc)).total_seconds() / 86400
    assert 1.9 < days <= 2.0
    with pytest.raises(ClientError):  # not even the bucket owner can delete the version
        admin.delete_object(Bucket=dest.bucket, Key=key, VersionId=version)

    backend.remove("locks/backup-1")  # lock files are not retained
    assert [i.name for i in backend.list("locks/")] == []


def test_object_lock_days_must_be_positive(s3_server):
    dest = s3_server.new_destination()
    with pytest.raises(InvalidConfig) as info:
        open_backend(dest.url, {**dest.options, "object_lock_days": "a week"})
    assert "object_lock_days" in info.value.message
