"""S3 (and S3-compatible stores: MinIO, Ceph, moto) through s3fs.

Options are s3fs's own (``key``, ``secret``, ``token``, ``profile``, ``endpoint_url``,
``client_kwargs``...) plus ``region``, ``storage_class``, ``object_lock_days`` and
``object_lock_mode`` (see ``s3_extras``). Anything not given comes from the standard AWS
environment, as the AWS CLI would read it: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
from typing import Any

from storage.backend import s3_extras
from storage.backend.base import display_url
from storage.backend.factory import PROVIDER_OPTIONS, PROVIDERS
from storage.backend.object_store import (
    ObjectStoreBackend, cause_chain, classify_status, is_network_failure, open_filesystem,
)
from storage.errors import BackupError, NotFound, PermanentError, TransientError

CHECK = ("the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --option key/secret), "
         "the endpoint and the bucket policy")
THROTTLING = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestTimeout",
              "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503"}
NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "InvalidConfigError"}


def s3_error_map(exc: BaseException, where: str) -> BackupError | None:
    for e in cause_chain(exc):
        name = type(e).__name__
        if name in NO_CREDENTIALS:
            return PermanentError(f"No usable AWS credentials were found for {where} ({name}); check {CHECK}.")
        response = getattr(e, "response", None)
        if isinstance(response, dict) and "Error" in response:
            code = str(response["Error"].get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                return NotFound(f"{where} does not exist.")
            if code in THROTTLING:
                return TransientError(f"S3 asked to slow down or failed while accessing {where} ({code}); retrying.")
            mapped = classify_status(status, code, where, CHECK)
            if mapped is not None:
                return mapped
    if is_network_failure(exc):
        return TransientError(f"The connection to S3 failed while accessing {where}: {type(exc).__name__}.")
    return None


class S3Backend(ObjectStoreBackend):
    credentials_hint = CHECK

    def __init__(self, url: str, fs: Any, root: str, policy: s3_extras.S3ObjectPolicy, region: str | None):
        super().__init__(url, fs, root, s3_error_map, policy.put_options)
        self.policy = policy
        self.region = region

    def container_exists(self) -> bool:
        try:
            self.fs.call_s3("head_bucket", Bucket=self.container)
        except Exception as exc:
            mapped = s3_error_map(exc, f"the bucket {self.container} of {display_url(self.url)}")
            if isinstance(mapped, NotFound):
                return False
            if mapped is None:
                raise
            raise mapped from exc
        return True

    def create_container(self) -> None:
        s3_extras.create_bucket(self.fs, self.container, self.region, object_lock=self.policy.locks)

    def remove(self, name: str) -> None:
        if not self.policy.locks:
            return super().remove(name)
        # With Object Lock the bucket is versioned: a plain DELETE would only hide the object,
        # so delete its current version for good, which the lock refuses until it expires.
        key = self._path(name).split("/", 1)[1]
        try:
            version = s3_extras.object_version(self.fs, self.container, key)
            s3_extras.delete_version(self.fs, self.container, key, version)
        except Exception as exc:
            mapped = self._translate(exc, name)
            if isinstance(mapped, NotFound):
                self._check_container()
            elif isinstance(mapped, PermanentError) and name.startswith(s3_extras.LOCKED_PREFIXES):
                mapped = PermanentError(
                    f"{name} in {display_url(self.url)} is protected by S3 Object Lock and cannot be deleted "
                    "before its retention date."
                )
            raise mapped from exc


def open_s3(url: str, options: dict[str, Any]) -> S3Backend:
    opts = dict(options)
    policy = s3_extras.S3ObjectPolicy.from_options(
        opts.pop("storage_class", None), opts.pop("object_lock_days", None), opts.pop("object_lock_mode", None))
    region = opts.pop("region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and not opts.get("endpoint_url"):
        opts["endpoint_url"] = endpoint
    if region:
        client_kwargs = dict(opts.get("client_kwargs") or {})
        client_kwargs.setdefault("region_name", region)
        opts["client_kwargs"] = client_kwargs
    fs, root = open_filesystem(url, opts, "s3://BUCKET/PATH", CHECK)
    return S3Backend(url, fs, root, policy, region)


PROVIDERS["s3"] = open_s3
PROVIDER_OPTIONS["s3"] = frozenset({"storage_class", "object_lock_days", "object_lock_mode", "region"})
