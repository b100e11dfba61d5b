"""The [backup] cloud keys become a working destination; secrets never show when printed."""

from __future__ import annotations

import logging

import pytest

from storage.backend import open_backend
from storage.backend.cloud_config import cloud_destination
from storage.config import BackupSettings
from storage.errors import InvalidConfig
from tests.cloud_servers import AZURITE_ACCOUNT, AZURITE_KEY


def test_disabled_means_no_cloud_destination():
    assert cloud_destination(BackupSettings(cloud_provider="s3", cloud_bucket="b")) is None


def test_s3_keys_reach_the_server_and_hide_the_secret(s3_server, caplog):
    bucket = s3_server.new_destination().bucket
    settings = BackupSettings(cloud_backup_enabled=True, cloud_provider="s3", cloud_bucket=f"{bucket}/laptop",
                              cloud_region="us-east-1", cloud_access_key="testing", cloud_secret_key="testing",
                              cloud_endpoint=s3_server.endpoint, storage_class="STANDARD_IA")
    dest = cloud_destination(settings)
    url, options = dest
    assert url == f"s3://{bucket}/laptop"
    backend = open_backend(url, options)
    backend.save("data/aa/pack", b"bytes")
    assert backend.load("data/aa/pack") == b"bytes"
    assert s3_server.client().head_object(Bucket=bucket, Key="laptop/data/aa/pack")["StorageClass"] == "STANDARD_IA"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("destination %s options %s %r", dest, options, options)
    for shown in (repr(dest), str(options), repr(options), caplog.text):
        assert "testing" not in shown and "***" in shown


def test_azure_keys_build_a_connection_string(azure_server):
    container = azure_server.new_destination().bucket
    settings = BackupSettings(cloud_backup_enabled=True, cloud_provider="azure", cloud_bucket=container,
                              cloud_access_key=AZURITE_ACCOUNT, cloud_secret_key=AZURITE_KEY,
                              cloud_endpoint=f"{azure_server.endpoint}/{AZURITE_ACCOUNT}")
    dest = cloud_destination(settings)
    backend = open_backend(dest.url, dest.options)
    backend.save("config", b"c")
    assert backend.load("config") == b"c" and AZURITE_KEY not in repr(dest)


def test_gcs_endpoint_reaches_the_emulator(gcs_server):
    bucket = gcs_server.new_destination().bucket
    dest = cloud_destination(BackupSettings(cloud_backup_enabled=True, cloud_provider="gcs", cloud_bucket=bucket,
                                            cloud_endpoint=gcs_server.endpoint))
    backend = open_backend(dest.url, dest.options)
    backend.save("config", b"g")
    assert backend.load("config") == b"g"


@pytest.mark.parametrize("keys,needle", [
    (dict(cloud_provider=None, cloud_bucket="b"), "cloud_provider"),
    (dict(cloud_provider="s3", cloud_bucket=""), "cloud_bucket"),
    (dict(cloud_provider="s3", cloud_bucket="b", cloud_access_key="AKIA"), "cloud_secret_key"),
    (dict(cloud_provider="gcs", cloud_bucket="b", object_lock_days=3), "S3 only"),
    (dict(cloud_provider="azure", cloud_bucket="b", cloud_secret_key="k"), "cloud_access_key"),
])
def test_incomplete_keys_name_what_to_fix(keys, needle):
    with pytest.raises(InvalidConfig) as info:
        cloud_destination(BackupSettings(cloud_backup_enabled=True, **keys))
    assert needle in info.value.message
