"""The repository's approval policy from flows: read the governing version, store a new one.

Plain functions, not Prefect tasks: each is one small read or one write-once object, and a
policy write must never be retried blindly (the version it follows may have moved on).
"""

from __future__ import annotations

from typing import Any

from storage.config import GuardianSettings
from storage.guardian import Verdict
from storage.guardian.stored_policy import StoredPolicy, repository_policy, store_policy
from tasks.repo_access import full_options


def read_repository_policy(repo: str, options: dict[str, Any] | None) -> StoredPolicy:
    return repository_policy(repo, full_options(repo, options))


def store_repository_policy(repo: str, options: dict[str, Any] | None, new: GuardianSettings,
                            current: StoredPolicy, request: dict[str, Any], verdict: Verdict) -> StoredPolicy:
    """Write ``new`` as the next version, with the request and the decisions that approved it."""
    return store_policy(repo, full_options(repo, options), new, current, request, verdict.accepted)
