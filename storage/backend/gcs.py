"""Google Cloud Storage through gcsfs (``gs://BUCKET/PATH``, also ``gcs://``).

Options are gcsfs's own (``token``, ``project``, ``endpoint_url``, ``requester_pays``...).
Anything not given comes from the standard Google environment: ``GOOGLE_APPLICATION_CREDENTIALS``
(or application-default credentials), ``GOOGLE_CLOUD_PROJECT``, and ``STORAGE_EMULATOR_HOST``
for an emulator, which needs no credentials (token ``anon``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from storage.backend.base import display_url
from storage.backend.factory import PROVIDERS
from storage.backend.object_store import (
    ObjectStoreBackend, cause_chain, classify_status, is_network_failure, open_filesystem,
)
from storage.errors import BackupError, InvalidConfig, PermanentError, TransientError

# gcsfs >= 2025 probes for hierarchical-namespace buckets on every call unless told not to,
# which stalls ~60 s per call against an emulator. Backups use flat object names, so the
# probe buys nothing; it must be switched off before gcsfs is first imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


class _NoRetryTracebacks(logging.Filter):
    """gcsfs logs each request that ran out of retries, with its whole traceback, before raising
    it; the error then reaches the user once, as one sentence (gcs_error_map). Without this the
    CLI printed a traceback per attempt."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.exc_info


logging.getLogger("gcsfs").addFilter(_NoRetryTracebacks())

CHECK = ("the Google credentials (GOOGLE_APPLICATION_CREDENTIALS or --option token=PATH-TO-KEY.json), "
         "the project and the bucket's IAM permissions")
AUTH_FAILURES = {"DefaultCredentialsError", "RefreshError", "MalformedError", "InvalidValue"}


def gcs_error_map(exc: BaseException, where: str) -> BackupError | None:
    for e in cause_chain(exc):
        name = type(e).__name__
        if name in AUTH_FAILURES:
            return PermanentError(f"No usable Google credentials were found for {where} ({name}); check {CHECK}.")
        if type(e) is OSError and str(e).startswith("Forbidden"):  # how gcsfs reports a 403
            return PermanentError(f"Access to {where} was refused (403); check {CHECK}.")
        code = getattr(e, "code", None)
        if name == "HttpError" and code is not None:
            mapped = classify_status(int(code), "", where, CHECK)
            if mapped is not None:
                return mapped
    if is_network_failure(exc):
        return TransientError(f"The connection to Google Cloud Storage failed while accessing {where}: "
                              f"{type(exc).__name__}.")
    return None


class GcsBackend(ObjectStoreBackend):
    credentials_hint = CHECK

    def __init__(self, url: str, fs: Any, root: str):
        super().__init__(url, fs, root, gcs_error_map)


def open_gcs(url: str, options: dict[str, Any]) -> GcsBackend:
    opts = dict(options)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator and "token" not in opts:
        opts["token"] = "anon"
    token = opts.get("token")
    if isinstance(token, str) and token.endswith(".json") and not os.path.isfile(os.path.expanduser(token)):
        raise InvalidConfig(f"The Google credentials file {token} for {display_url(url)} does not exist; "
                            "fix the token option.")
    if "project" not in opts and os.environ.get("GOOGLE_CLOUD_PROJECT"):
        opts["project"] = os.environ["GOOGLE_CLOUD_PROJECT"]
    fs, root = open_filesystem(url, opts, "gs://BUCKET/PATH", CHECK)
    return GcsBackend(url, fs, root)


for _scheme in ("gs", "gcs"):
    PROVIDERS[_scheme] = open_gcs
