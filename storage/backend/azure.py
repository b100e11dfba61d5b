"""Azure Blob Storage through adlfs (``az://CONTAINER/PATH``, also ``abfs://`` and ``abfss://``).

Options are adlfs's own (``connection_string``, ``account_name``, ``account_key``,
``sas_token``, ``credential``, ``anon``...). Anything not given comes from the standard Azure
environment: ``AZURE_STORAGE_CONNECTION_STRING``, or ``AZURE_STORAGE_ACCOUNT_NAME`` with
``AZURE_STORAGE_ACCOUNT_KEY`` (or ``AZURE_STORAGE_SAS_TOKEN``, or an Azure AD identity through
DefaultAzureCredential when only the account name is known).
"""

from __future__ import annotations

import os
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from storage.backend.base import display_url
from storage.backend.factory import PROVIDERS
from storage.backend.object_store import (
    ObjectStoreBackend, cause_chain, classify_status, is_network_failure, open_filesystem,
)
from storage.errors import BackupError, InvalidConfig, NotFound, PermanentError, TransientError

CHECK = ("the Azure credentials (AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
         "AZURE_STORAGE_ACCOUNT_KEY, or --option connection_string=...) and the container's access policy")


def azure_error_map(exc: BaseException, where: str) -> BackupError | None:
    for e in cause_chain(exc):
        if isinstance(e, ClientAuthenticationError):
            return PermanentError(f"Azure refused the credentials for {where}; check {CHECK}.")
        if isinstance(e, ResourceNotFoundError):
            return NotFound(f"{where} does not exist.")
        if isinstance(e, HttpResponseError):
            code = str(getattr(e, "error_code", "") or "")
            mapped = classify_status(getattr(e, "status_code", None), code, where, CHECK)
            if mapped is not None:
                return mapped
    if is_network_failure(exc):
        return TransientError(f"The connection to Azure failed while accessing {where}: {type(exc).__name__}.")
    return None


class AzureBackend(ObjectStoreBackend):
    credentials_hint = CHECK
    container_word = "container"

    def __init__(self, url: str, fs: Any, root: str):
        super().__init__(url, fs, root, azure_error_map)


def open_azure(url: str, options: dict[str, Any]) -> AzureBackend:
    opts = dict(options)
    env_ok = os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not (opts.get("connection_string") or opts.get("account_name") or env_ok):
        raise InvalidConfig(
            f"No Azure account is configured for {display_url(url)}; set AZURE_STORAGE_CONNECTION_STRING, or "
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, or pass --option connection_string=..."
        )
    fs, root = open_filesystem(url, opts, "az://CONTAINER/PATH", CHECK)
    return AzureBackend(url, fs, root)


for _scheme in ("az", "abfs", "abfss"):
    PROVIDERS[_scheme] = open_azure
