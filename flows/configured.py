"""The configured repository and source of the Python API (``[backup]`` in the config).

``get_backup_manager()`` and ``get_versioning_engine()`` work on what the configuration names:
``BACKUPFLOW_REPO`` or ``[backup] backup_path`` (or the cloud keys) for the repository,
``[backup] source`` for what is backed up, and the password sources of tasks/passwords.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from storage import Repository
from storage.backend import display_url
from storage.backend.cloud_config import cloud_destination
from storage.config import Settings, load_settings
from storage.errors import InvalidConfig
from tasks.passwords import open_repository
from tasks.repo_access import full_options, read_password_block


@dataclass
class Target:
    """Where the Python API reads and writes: a repository URL, its options, the settings."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)

    @property
    def where(self) -> str:
        return display_url(self.url)

    def source(self) -> str:
        source = self.settings.backup.source
        if not source:
            raise InvalidConfig("No source is configured; set [backup] source in the config to the folder to back up.")
        return os.path.abspath(os.path.expanduser(source))

    def open(self, create: bool = False) -> Repository:
        """The repository, opened without Prefect (the password from the usual sources); a new
        one is encrypted, as from the CLI and the flows."""
        return open_repository(self.url, full_options(self.url, self.options), create=create,
                               read_block=read_password_block, settings=self.settings)


def configured_target(config: str | None = None, repository: str | None = None) -> Target:
    settings = load_settings(config)
    b = settings.backup
    options: dict[str, Any] = dict(b.options)
    url = repository or os.environ.get("BACKUPFLOW_REPO") or b.repository
    if not url:
        cloud = cloud_destination(b)
        if cloud is None:
            raise InvalidConfig("No repository is configured; set [backup] backup_path in the config "
                                "(or BACKUPFLOW_REPO) to where backups and versions are kept.")
        url = cloud.url
        options.update(cloud.options)
    if b.cloud_secret_block:
        options["secret_block"] = b.cloud_secret_block
    return Target(url, options, settings)
