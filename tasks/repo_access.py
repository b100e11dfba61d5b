"""How tasks open a repository from plain data (URL + non-secret options).

Secrets never travel as flow or task parameters (they would show in the Prefect UI): the
caller registers them for a URL in this process with :func:`register_secret_options`, or
they come from the cloud's standard environment variables or a Prefect Secret block.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from typing import Any, Iterator

from prefect.blocks.system import Secret
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from storage import Repository
from storage.backend.credentials import split_secret_options  # noqa: F401  (flows import it from here)
from storage.errors import InvalidConfig
from tasks.passwords import Encryption, open_repository

_SECRETS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()
def register_secret_options(url: str, secret: dict[str, Any]) -> None:
    if secret:
        with _LOCK:
            _SECRETS.setdefault(url, {}).update(secret)


def _secret(name: str, setting: str) -> Any:
    """The value of the Prefect Secret block ``name`` that the config's ``setting`` names."""
    try:
        return Secret.load(name).get()
    except ValueError:
        raise InvalidConfig(f"The Prefect Secret block {name!r} ({setting}) does not exist; "
                            "create it or fix the name.") from None


def resolve_secret_block(options: dict[str, Any]) -> dict[str, Any]:
    """Replace ``secret_block`` (the name of a Prefect Secret block, from config
    ``backup.cloud_secret_block``) by the storage options it holds, a JSON object such as
    ``{"key": ..., "secret": ...}``. Read at run time, inside the task, so the values never
    travel as parameters."""
    name = options.get("secret_block")
    if not name:
        return options
    value = _secret(name, "backup.cloud_secret_block")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise InvalidConfig(f"The Prefect Secret block {name!r} must hold a JSON object of storage options, "
                            'such as {"key": "...", "secret": "..."}.')
    rest = {k: v for k, v in options.items() if k != "secret_block"}
    return {**rest, **value}


def read_password_block(name: str) -> str:
    """The password a Prefect Secret block holds (config ``backup.password_secret_block``): a
    string, or a JSON object with a ``password`` field. Read at run time, inside the task."""
    value = _secret(name, "backup.password_secret_block")
    if isinstance(value, dict):
        value = value.get("password")
    if not isinstance(value, str) or not value:
        raise InvalidConfig(f"The Prefect Secret block {name!r} (backup.password_secret_block) holds no password; "
                            'store the password as its value, or {"password": "..."}.')
    return value


def full_options(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``options`` with the secrets registered for ``url`` (or its Secret block) added back."""
    with _LOCK:
        merged = {**(options or {}), **_SECRETS.get(url, {})}
    return resolve_secret_block(merged)


# Repositories opened by the tasks of the current flow run (see :func:`run_scope`).
_RUN_REPOS: contextvars.ContextVar[dict[str, Repository] | None] = contextvars.ContextVar("_RUN_REPOS", default=None)


@contextlib.contextmanager
def run_scope() -> Iterator[None]:
    """While a flow runs in this process, its tasks (called one after another) share one
    opened repository per URL and options, closed when the flow returns: opening a cloud store
    means new connections and a first request. Each task still reads the repository's state
    afresh (:meth:`Repository.refresh`): it may change between tasks, an approval can wait
    hours, and a retried task must not see what a failed attempt left in memory."""
    token = _RUN_REPOS.set({})
    try:
        yield
    finally:
        opened = _RUN_REPOS.get() or {}
        _RUN_REPOS.reset(token)
        for repo in opened.values():
            repo.close()


def in_run_scope() -> bool:
    return _RUN_REPOS.get() is not None


def _warn(sentence: str) -> None:
    try:
        get_run_logger().warning(sentence)
    except MissingContextError:  # called outside a flow or task run
        pass


def open_repo(url: str, options: dict[str, Any] | None = None, create: bool = False, refresh: bool = True,
              encryption: Encryption = "on", **init_args) -> Repository:
    """The run's repository at ``url``, opened with its password from the sources of
    :mod:`tasks.passwords` (the Secret block read here, at run time); with ``create``, made in
    an empty location, encrypted unless ``encryption`` is "none". ``refresh=False`` keeps what
    it has read (the reports published right after a commit need no second read of the index)."""
    opened = _RUN_REPOS.get()
    key = url + "\n" + json.dumps(options or {}, sort_keys=True, default=str)
    if opened is not None and key in opened:
        repo = opened[key]
        if refresh:
            repo.refresh()
        return repo
    repo = open_repository(url, full_options(url, options), create=create, encryption=encryption,
                           read_block=read_password_block, notice=_warn, **init_args)
    if opened is not None:
        opened[key] = repo
    return repo
