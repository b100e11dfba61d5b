"""Where a command's repository is and how its flows are loaded: flags, then the environment,
then the config file; cloud keys from the config when no URL is given anywhere."""

from __future__ import annotations

import importlib
import os
from typing import Any

from flows.cli import password_prompt
from flows.cli.common import parse_options, resolve_repo, use_config
from storage import Repository
from storage.backend import (
    check_option_names, check_repository_url, display_url, refuse_option_credentials, refuse_url_credentials,
    scheme_of,
)
from storage.backend.cloud_config import cloud_destination
from storage.config import Settings, load_settings, refuse_when_disabled
from storage.errors import PasswordRequired
from tasks import passwords


def repo_context(repo: str | None, option: list[str] | None, config: str | None,
             upload_limit: str | None = None,
             download_limit: str | None = None, writing: str | None = None) -> tuple[str, dict[str, Any], Settings]:
    """The repository URL and its options, from flags, environment and config (in that order).
    ``writing`` says what a command that writes would do: it is refused when backups are disabled."""
    use_config(config)
    settings = load_settings(config)
    if writing:
        refuse_when_disabled(settings, writing)
    b = settings.backup
    base: dict[str, Any] = dict(b.options)
    cloud = None if (repo or os.environ.get("BACKUPFLOW_REPO") or b.repository) else cloud_destination(b)
    if cloud is not None:
        url = cloud.url
        base.update(cloud.options)
    else:
        url = resolve_repo(repo, b.repository)
        check_repository_url(url, persistent=True)
        if scheme_of(url) == "s3":
            if b.storage_class:
                base["storage_class"] = b.storage_class
            if b.object_lock_days:
                base["object_lock_days"] = b.object_lock_days
    if b.cloud_secret_block:
        base["secret_block"] = b.cloud_secret_block
    refuse_url_credentials(url)
    opts = parse_options(option, base)
    refuse_option_credentials(opts)
    for key, flag, configured in (("upload_limit", upload_limit, b.upload_limit),
                                  ("download_limit", download_limit, b.download_limit)):
        if flag or (configured and key not in opts):
            opts[key] = flag or configured
    # Before any flow run starts: a misspelt option is refused, never silently ignored. The
    # options a Prefect Secret block holds are checked when it is read.
    check_option_names(url, {k: v for k, v in opts.items() if k != "secret_block"})
    return url, opts, settings


def with_secret_block(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` with the Prefect Secret block it names (if any) read into it."""
    if "secret_block" in opts:
        # Only then is Prefect loaded: reading the block needs its client.
        opts = importlib.import_module("tasks.repo_access").resolve_secret_block(opts)
    return opts


def read_password_block(name: str) -> str:
    # Only then is Prefect loaded: reading the block needs its client.
    return importlib.import_module("tasks.repo_access").read_password_block(name)


def open_repository(repo, option, config) -> Repository:
    """The repository of a command that reads it here (no flow run), with its password from
    the sources of tasks/passwords.py, or typed at the terminal when they have none."""
    url, opts, _ = repo_context(repo, option, config)
    return open_at_terminal(url, with_secret_block(opts))


def open_at_terminal(url: str, opts: dict[str, Any]) -> Repository:
    try:
        return passwords.open_repository(url, opts, read_block=read_password_block)
    except PasswordRequired:
        if not password_prompt.at_terminal():
            raise
        passwords.use_password(password_prompt.read_hidden(f"Password for {display_url(url)}: "))
        return passwords.open_repository(url, opts, read_block=read_password_block)


def load_flows():
    # Loaded here, not at module top: importing Prefect costs over a second that the
    # read-only commands in this module must not pay.
    return importlib.import_module("flows.cli.flow_runner"), importlib.import_module("flows")


