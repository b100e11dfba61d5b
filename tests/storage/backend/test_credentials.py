"""One rule decides which option names and URL parts are credentials (storage.backend.credentials)."""

from __future__ import annotations

import pytest

from storage.backend import open_backend
from storage.backend.cloud_config import SecretOptions
from storage.backend.credentials import is_secret_name, split_secret_options, url_credentials
from storage.errors import InvalidConfig


@pytest.mark.parametrize("name", ["key", "secret", "token", "account_key", "connection_string", "sas_token",
                                  "client_secret", "password", "credential", "credentials", "session_token",
                                  "access_key", "X-Amz-Signature", "X-Amz-Credential", "sig", "apiKey",
                                  "secret_block_value", "AccountKey"])
def test_credential_names_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["connections", "region", "endpoint_url", "object_lock_days", "storage_class",
                                  "account_name", "upload_limit", "first_contact_seconds", "anon"])
def test_plain_names_are_not_secret(name):
    assert not is_secret_name(name)


def test_the_redacted_repr_and_the_split_agree():
    options = {"key": "AKIA", "access_key": "AKIA2", "sas_token": "sv=1&sig=x", "region": "eu", "connections": 4}
    plain, secret = split_secret_options(options)
    shown = repr(SecretOptions(options))
    assert set(secret) == {"key", "access_key", "sas_token"} and set(plain) == {"region", "connections"}
    for value in ("AKIA", "AKIA2", "sig=x"):
        assert value not in shown


@pytest.mark.parametrize("url, found", [
    ("ftp://user:pass@example.com/backups", ["password"]),
    ("s3://bucket/repo?token=abc", ["token"]),
    ("https://acct.blob.core.windows.net/c?sv=2020&sig=abc", ["sig"]),
    ("s3://b/r?X-Amz-Algorithm=AWS4&X-Amz-Signature=ff", ["X-Amz-Algorithm", "X-Amz-Signature"]),
    ("abfs://container@account.dfs.core.windows.net/repo", []),
    ("/srv/backups/repo", []),
    ("s3://bucket/repo?versionId=3", []),
])
def test_url_credentials_are_found(url, found):
    assert url_credentials(url) == found


@pytest.mark.parametrize("url, options", [
    ("ftp://user:hunter2-secret@127.0.0.1:1/backups", {}),
    ("s3://bucket/repo?token=hunter2-secret", {}),
    ("s3://bucket/repo", {"endpoint_url": "http://minio:hunter2-secret@127.0.0.1:1"}),
])
def test_a_url_with_a_credential_is_refused_without_quoting_it(url, options):
    with pytest.raises(InvalidConfig) as err:
        open_backend(url, options)
    assert "hunter2-secret" not in err.value.message
    assert "remove it from the URL" in err.value.message
