"""How tasks open a repository from plain data (URL + non-secret options).

Secrets never travel as flow or task parameters (they would show in the Prefect UI): the
caller registers them for a URL in this process with :func:`register_secret_options`, or
they come from the cloud's standard environment variables or a Prefect Secret block.
"""

from __future__ import annotations

import threading
from typing import Any

from storage import Repository

_SECRETS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()
SECRET_WORDS = ("key", "secret", "password", "token", "credential", "connection_string", "sas")


def split_secret_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain options, secret options) by key name."""
    plain, secret = {}, {}
    for k, v in (options or {}).items():
        (secret if any(w in k.lower() for w in SECRET_WORDS) else plain)[k] = v
    return plain, secret


def register_secret_options(url: str, secret: dict[str, Any]) -> None:
    if secret:
        with _LOCK:
            _SECRETS.setdefault(url, {}).update(secret)


def open_repo(url: str, options: dict[str, Any] | None = None, create: bool = False, **init_args) -> Repository:
    with _LOCK:
        merged = {**(options or {}), **_SECRETS.get(url, {})}
    return Repository.open(url, merged, create=create, **init_args)
