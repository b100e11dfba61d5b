"""For approval tests: real SSH ed25519 key pairs written as ssh-keygen would, TOML values,
and a first policy stored in a repository."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from storage.backend import open_backend
from storage.config import GuardianSettings
from storage.guardian import ApprovalRequest
from storage.guardian.stored_policy import StoredPolicy, change_operation, write_policy


def make_key(folder: Path, name: str) -> tuple[Path, str]:
    """(path of the OpenSSH private key file, the public key line for the policy)."""
    key = Ed25519PrivateKey.generate()
    path = folder / f"id_ed25519_{name}"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return path, f"{public} {name}@test"


def toml_value(value) -> str:
    """A TOML value for plain data (dicts become inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def first_policy(repo: str, policy: GuardianSettings) -> None:
    """Store version 1, approved under the defaults by someone other than its requester."""
    operation = {**change_operation(repo, policy, StoredPolicy()), "requester": "admin"}
    request = ApprovalRequest.from_operation(operation, "admin", run_id="setup").to_dict()
    write_policy(open_backend(repo), policy, StoredPolicy(), request, [{"approved": True, "approver": "owner"}])
