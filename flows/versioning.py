"""The VersioningEngine of the Python API: per-file version history in the configured repository.

A thin layer over :class:`storage.versions.VersionStore`: it finds the repository from the
configuration, audits what changes (``version.created``, ``version.tagged``,
``version.restored``) and asks Guardian before a restore overwrites a file.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flows.configured import Target, configured_target
from storage import Repository
from storage.audit import AuditLog, current_user
from storage.errors import ApprovalRejected, ApprovalTimeout
from storage.versions import Version, VersionStore
from tasks.approval_gate import request_approval


class VersioningEngine:
    """Versions of files by path: create, list, tag, read, diff and restore them."""

    def __init__(self, target: Target):
        self.target = target
        self._repo: Repository | None = None
        self._store: VersionStore | None = None

    @property
    def store(self) -> VersionStore:
        if self._store is None:
            self._repo = self.target.open(create=True)
            self._store = self._repo.versions()
        return self._store

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
        self._repo = self._store = None

    def __enter__(self) -> "VersioningEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _audit(self, event: str, version: Version, **details: Any) -> None:
        AuditLog(self.target.settings.audit_path).log_event(
            event, user=version.author or current_user(), target=version.file_path,
            details={"repo": self.target.where, "version_id": version.version_id, "number": version.number,
                     "content_hash": version.content_hash, **details})

    # --- writing ---------------------------------------------------------------------------
    def create_version(self, file_path: str, content: bytes, author: str = "", message: str = "",
                       tags: list[str] | None = None) -> Version:
        version = self.store.create_version(file_path, content, author or current_user(), message, tags or ())
        self._audit("version.created", version, size=version.size, parent_id=version.parent_id, message=message)
        return version

    def tag_version(self, file_path: str, version_id: str, tag: str) -> Version:
        version = self.store.tag_version(file_path, version_id, tag)
        self._audit("version.tagged", version, tag=tag)
        return version

    # --- reading ---------------------------------------------------------------------------
    def get_versions(self, file_path: str) -> list[Version]:
        """Every version of the file, oldest first ([] when it has none)."""
        return self.store.get_versions(file_path)

    def get_latest_version(self, file_path: str) -> Version | None:
        return self.store.get_latest_version(file_path)

    def get_version(self, file_path: str, version_id_or_tag: str) -> Version:
        return self.store.get_version(file_path, version_id_or_tag)

    def get_content(self, version: Version) -> bytes:
        return self.store.get_content(version)

    def diff_versions(self, a: Version, b: Version, context: int = 3) -> str:
        """A unified diff for text, a one-line summary for binary content ('' when identical)."""
        return self.store.diff(a, b, context)

    def get_storage_stats(self) -> dict[str, Any]:
        return self.store.stats().to_dict()

    # --- restoring -------------------------------------------------------------------------
    def restore_version(self, file_path: str, version_id_or_tag: str = "latest", target_path: str | None = None,
                        requester: str | None = None) -> bool:
        """Write a version to ``target_path`` (default: the file's own path). Overwriting a file
        with other content asks Guardian first; True when written, False when the approval was
        rejected or timed out (nothing is written then)."""
        version = self.get_version(file_path, version_id_or_tag)
        target = os.path.abspath(target_path or version.file_path)
        if _differs(target, version.content_hash):
            try:
                request_approval({"kind": "restore", "repo": self.target.where, "target": target,
                                  "snapshot": f"version {version.version_id} of {version.file_path}",
                                  "requester": requester or current_user(), "target_exists": True,
                                  "target_empty": False, "preview": {"create": [], "overwrite": [target],
                                                                     "bytes": version.size}},
                                 settings=self.target.settings, repo=self.target.url, options=self.target.options)
            except (ApprovalRejected, ApprovalTimeout):
                return False
        self.store.restore_to(version, target)
        self._audit("version.restored", version, restored_to=target)
        return True


def _differs(path: str, content_hash: str) -> bool:
    """Whether writing ``path`` would change an existing file (a new file changes nothing)."""
    if not os.path.lexists(path):
        return False
    if not os.path.isfile(path) or os.path.islink(path):
        return True
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest() != content_hash


def get_versioning_engine(config: str | None = None, repository: str | None = None) -> VersioningEngine:
    """The VersioningEngine of the configured repository (``[backup] backup_path``)."""
    return VersioningEngine(configured_target(config, repository))
