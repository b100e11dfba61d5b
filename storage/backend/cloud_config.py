"""Turn the ``[backup]`` cloud keys of config.toml into a repository URL and backend options.

    [backup]
    cloud_backup_enabled = true
    cloud_provider = "s3"            # "s3", "azure" or "gcs"
    cloud_bucket = "my-backups/laptop"   # bucket (S3, GCS) or container (Azure), optional path
    cloud_region = "eu-west-1"       # S3 only
    cloud_access_key = "..."         # S3 access key id; Azure storage account name
    cloud_secret_key = "..."         # S3 secret key; Azure account key; GCS service-account JSON path
    cloud_endpoint = "http://..."    # S3-compatible endpoint, Azure blob endpoint, GCS emulator

Keys left out fall back to each cloud's standard environment (see s3.py, azure.py, gcs.py).
The options returned are a :class:`SecretOptions`, whose repr and str hide credential values,
so printing or logging them by mistake leaks nothing. Errors name keys, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.backend.base import display_url
from storage.backend.credentials import redact_options
from storage.errors import InvalidConfig

SCHEMES = {"s3": "s3", "azure": "az", "gcs": "gs"}


class SecretOptions(dict):
    """Backend options whose repr hides credentials (the dict itself keeps them for the SDK)."""

    def __repr__(self) -> str:
        return repr(redact_options(self))

    __str__ = __repr__


@dataclass(frozen=True)
class CloudDestination:
    url: str
    options: SecretOptions = field(repr=False)

    def __iter__(self):  # url, options = cloud_destination(settings)
        return iter((self.url, self.options))

    def __repr__(self) -> str:
        return f"CloudDestination({display_url(self.url)!r}, options={self.options!r})"


def cloud_destination(settings: Any) -> CloudDestination | None:
    """The destination the ``[backup]`` cloud keys describe, or None when cloud backup is off.

    ``settings`` is a ``storage.config.BackupSettings`` (anything with the same attributes).
    """
    if not getattr(settings, "cloud_backup_enabled", False):
        return None
    provider = settings.cloud_provider
    if provider not in SCHEMES:
        raise InvalidConfig('backup.cloud_provider must be "s3", "azure" or "gcs" when cloud_backup_enabled is true.')
    if not settings.cloud_bucket or not str(settings.cloud_bucket).strip("/"):
        raise InvalidConfig("backup.cloud_bucket is empty; name the bucket (or Azure container) to back up into.")
    url = f"{SCHEMES[provider]}://{str(settings.cloud_bucket).strip('/')}"
    options = SecretOptions()
    access, secret, endpoint = settings.cloud_access_key, settings.cloud_secret_key, settings.cloud_endpoint
    if provider == "s3":
        options.update(_s3_options(settings))
    else:
        if settings.storage_class or settings.object_lock_days:
            raise InvalidConfig("backup.storage_class and backup.object_lock_days apply to S3 only; remove them for "
                                f"cloud_provider = \"{provider}\".")
        if provider == "azure":
            options.update(_azure_options(access, secret, endpoint))
        else:
            options.update(_gcs_options(access, secret, endpoint))
    return CloudDestination(url, options)


def _s3_options(settings: Any) -> dict[str, Any]:
    access, secret, endpoint = settings.cloud_access_key, settings.cloud_secret_key, settings.cloud_endpoint
    if bool(access) != bool(secret):
        raise InvalidConfig("backup.cloud_access_key and backup.cloud_secret_key must be set together "
                            "(or both left out).")
    options: dict[str, Any] = {}
    if access:
        options.update(key=access, secret=secret)
    if settings.cloud_region:
        options["region"] = settings.cloud_region
    if endpoint:
        options["endpoint_url"] = endpoint
    if settings.storage_class:
        options["storage_class"] = settings.storage_class
    if settings.object_lock_days:
        options["object_lock_days"] = settings.object_lock_days
    return options


def _gcs_options(access: str | None, secret: str | None, endpoint: str | None) -> dict[str, str]:
    if access:
        raise InvalidConfig("backup.cloud_access_key is not used for GCS; put the service-account JSON path in "
                            "backup.cloud_secret_key.")
    options: dict[str, str] = {}
    if secret:
        options["token"] = secret
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def _azure_options(account: str | None, key: str | None, endpoint: str | None) -> dict[str, str]:
    if key and not account:
        raise InvalidConfig("backup.cloud_secret_key (the Azure account key) needs backup.cloud_access_key, "
                            "the storage account name.")
    if endpoint:
        if not (account and key):
            raise InvalidConfig("backup.cloud_endpoint for Azure needs backup.cloud_access_key (account name) and "
                                "backup.cloud_secret_key (account key).")
        protocol = "http" if endpoint.startswith("http://") else "https"
        return {"connection_string": f"DefaultEndpointsProtocol={protocol};AccountName={account};"
                                     f"AccountKey={key};BlobEndpoint={endpoint.rstrip('/')};"}
    options: dict[str, str] = {}
    if account:
        options["account_name"] = account
    if key:
        options["account_key"] = key
    return options
