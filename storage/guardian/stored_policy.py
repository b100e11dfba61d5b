"""The approval policy that governs a repository, kept in the repository itself.

The person asking for a destructive operation must not choose the rules it is judged by, so
the policy lives with the data: ``policy/<version>-<hash>.json``, write-once objects (under S3
Object Lock when ``object_lock_days`` is set). Each version names the hash of the version it
replaces and carries the approval that let it in: the request (operation ``kind: policy`` with
the new policy) and the decisions that approved it, signed when the old policy needs that. A
reader accepts a version only if that approval satisfies the version before it (the
defaults, for the first), so a version written straight into the repository by someone
without the approvers' keys is skipped and reported, and the last valid version governs.

A requester's local ``[guardian]`` config can only make the governing policy stricter
(:func:`stricter`, field by field); with no policy in the repository, the defaults are what
it tightens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from storage.backend import Backend, open_backend
from storage.config import GuardianSettings
from storage.errors import AlreadyExists, InvalidConfig
from storage.guardian.policy import ApprovalRequest, Decision, decide
from storage.layout import POLICY

PREFIX = POLICY
LEVELS = ["low", "medium", "high", "critical"]


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class StoredPolicy:
    """The governing policy of a repository, and what a reader found on the way."""

    policy: GuardianSettings | None = None  # None: the repository has no policy yet
    version: int = 0
    hash: str | None = None  # of the governing version's object, named by the next one
    skipped: list[str] = field(default_factory=list)  # versions refused, one sentence each

    @property
    def governing(self) -> GuardianSettings:
        return self.policy or GuardianSettings()


def object_name(version: int, data: bytes) -> str:
    """``policy/<version>-<content hash>.json``: a version anyone writes first cannot take the
    name of a valid one, and names sort by version."""
    return f"{PREFIX}{version:08d}-{hashlib.sha256(data).hexdigest()[:16]}.json"


def change_operation(repo: str, new: GuardianSettings, current: StoredPolicy) -> dict[str, Any]:
    """The operation a policy change asks approval for (risk: critical)."""
    return {"kind": "policy", "repo": repo, "version": current.version + 1, "previous": current.hash,
            "policy": new.model_dump()}


def read_policy(backend: Backend) -> StoredPolicy:
    """Walk the versions in order; each must be approved under the one it replaces."""
    found = StoredPolicy()
    for info in sorted(backend.list(PREFIX), key=lambda i: i.name):
        data = backend.load(info.name)
        why = _refusal(data, found)
        if why:
            found.skipped.append(f"{info.name} was not applied: {why}")
            continue
        doc = json.loads(data)
        found = StoredPolicy(GuardianSettings.model_validate(doc["policy"]), int(doc["version"]),
                             hashlib.sha256(data).hexdigest(), found.skipped)
    return found


def _refusal(data: bytes, current: StoredPolicy) -> str | None:
    try:
        doc = json.loads(data)
        new = GuardianSettings.model_validate(doc["policy"])
        approval = doc["approval"]
        request = ApprovalRequest.from_dict(approval["request"])
        decisions = [Decision.from_answer(d) for d in approval["decisions"]]
    except (ValueError, KeyError, TypeError):
        return "it is not a valid policy document"
    if doc.get("previous") != current.hash or int(doc.get("version", -1)) != current.version + 1:
        return f"it does not follow version {current.version}"
    expected = change_operation(request.operation.get("repo", ""), new, current)
    if {k: v for k, v in request.operation.items() if k != "requester"} != expected:
        return "its approval was given for a different change"
    verdict = decide(request, decisions, current.governing)
    if verdict.status != "approved":
        return f"its approval does not satisfy the policy it replaces ({verdict.message})"
    return None


def write_policy(backend: Backend, new: GuardianSettings, current: StoredPolicy, request: dict[str, Any],
                 decisions: list[dict[str, Any]]) -> StoredPolicy:
    """Store ``new`` as the next version with the approval that let it in."""
    version = current.version + 1
    doc = {"version": version, "previous": current.hash, "policy": new.model_dump(),
           "approval": {"request": request, "decisions": decisions}}
    data = _canonical(doc)
    why = _refusal(data, current)
    if why:
        raise InvalidConfig(f"The new policy cannot be stored: {why}.")
    try:
        backend.save(object_name(version, data), data, exclusive=True)
    except AlreadyExists:
        raise InvalidConfig(f"Someone changed the policy (version {version}) meanwhile; ask again.") from None
    return StoredPolicy(new, version, hashlib.sha256(data).hexdigest(), current.skipped)


def repository_policy(url: str, options: dict[str, Any] | None = None) -> StoredPolicy:
    backend = open_backend(url, options)
    try:
        return read_policy(backend)
    finally:
        backend.close()


def store_policy(url: str, options: dict[str, Any] | None, new: GuardianSettings, current: StoredPolicy,
                 request: dict[str, Any], decisions: list[dict[str, Any]]) -> StoredPolicy:
    backend = open_backend(url, options)
    try:
        if read_policy(backend).hash != current.hash:
            raise InvalidConfig("Someone changed the policy while this change waited for approval; ask again.")
        return write_policy(backend, new, current, request, decisions)
    finally:
        backend.close()


def effective_policy(stored: StoredPolicy, local: GuardianSettings) -> GuardianSettings:
    """What judges a request: the repository's policy (or the defaults) tightened by ``local``.
    Approver keys say who someone is, so once the repository has a policy only its keys count."""
    merged = stricter(stored.governing, local)
    if stored.policy is not None:
        merged = merged.model_copy(update={"approver_keys": stored.policy.approver_keys})
    return merged


def stricter(governing: GuardianSettings, local: GuardianSettings) -> GuardianSettings:
    """The stricter of each field: a local config can tighten the policy, never loosen it."""
    approvers = governing.approvers
    if governing.approvers and local.approvers:
        approvers = [a for a in governing.approvers if a in local.approvers]
        if not approvers:
            raise InvalidConfig("No approver is allowed both by the repository's policy and by guardian.approvers "
                                "in your config; fix guardian.approvers.")
    elif local.approvers:
        approvers = local.approvers
    return GuardianSettings(
        require_approval=[lv for lv in LEVELS if lv in governing.require_approval or lv in local.require_approval],
        approvers=approvers,
        timeout_seconds=min(governing.timeout_seconds, local.timeout_seconds),
        allow_self_approval=governing.allow_self_approval and local.allow_self_approval,
        critical_approvals=max(governing.critical_approvals, local.critical_approvals),
        approver_keys={**local.approver_keys, **governing.approver_keys},
        trust_server_authentication=governing.trust_server_authentication and local.trust_server_authentication,
    )
