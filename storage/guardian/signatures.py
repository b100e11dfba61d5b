"""Signed decisions: an approver proves who they are with their own SSH ed25519 key.

The signed *statement* is the canonical JSON of ``{v, run_id, operation_digest, approved,
approver, reason, time}``; ``operation_digest`` is the sha256 of the request's operation,
requester and risk, so a signature approves one operation in one run and nothing else. The
policy lists each approver's OpenSSH public keys (``[guardian.approver_keys]``); a decision
counts only if its signature verifies under one of the keys listed for the name it gives.
The key's fingerprint (``SHA256:...`` as ``ssh-keygen -l`` prints it) identifies the signer,
so two approvals need two different keys, whatever names they give.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding, PublicFormat, load_ssh_private_key, load_ssh_public_key,
)

from storage.errors import InvalidConfig, InvalidInput

VERSION = 1


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def operation_digest(request_dict: dict[str, Any]) -> str:
    """What a signature approves: the operation, who asked, and the assessed risk."""
    body = {k: request_dict.get(k) for k in ("operation", "requester", "risk")}
    return hashlib.sha256(_canonical(body)).hexdigest()


def statement(run_id: str, digest: str, approved: bool, approver: str, reason: str, time: str) -> bytes:
    return _canonical({"v": VERSION, "run_id": str(run_id), "operation_digest": digest,
                       "approved": bool(approved), "approver": approver, "reason": reason, "time": time})


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1]
    digest = hashlib.sha256(base64.b64decode(raw)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(text: str, who: str) -> Ed25519PublicKey:
    try:
        key = load_ssh_public_key(str(text).strip().encode())
    except (ValueError, TypeError, IndexError):
        raise InvalidConfig(f"guardian.approver_keys for {who} is not an OpenSSH public key line "
                            "(ssh-ed25519 AAAA...); paste the line of their id_ed25519.pub.") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidConfig(f"guardian.approver_keys for {who} is not an ed25519 key; list an ssh-ed25519 key.")
    return key


def load_signing_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The approver's private key (OpenSSH format); a passphrase comes from
    ``BACKUPFLOW_KEY_PASSPHRASE``."""
    where = Path(os.path.expanduser(str(path)))
    try:
        data = where.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read the signing key {where} ({exc.strerror or exc}); pass --key with your "
                           "ed25519 private key.") from None
    passphrase = os.environ.get("BACKUPFLOW_KEY_PASSPHRASE")
    try:
        key = load_ssh_private_key(data, passphrase.encode() if passphrase else None)
    except (ValueError, TypeError) as exc:
        hint = "set BACKUPFLOW_KEY_PASSPHRASE" if "password" in str(exc).lower() else "pass an OpenSSH ed25519 key"
        raise InvalidInput(f"{where} is not a usable OpenSSH private key; {hint}.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{where} is not an ed25519 key; approvals are signed with ssh-ed25519 keys.")
    return key


def sign_decision(key: Ed25519PrivateKey, run_id: str, request_dict: dict[str, Any], approved: bool,
                  approver: str, reason: str) -> dict[str, str]:
    """The signature fields of a resume answer: ``signature``, ``signed_at``, ``key``."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    message = statement(run_id, operation_digest(request_dict), approved, approver, reason, now)
    return {"signature": base64.b64encode(key.sign(message)).decode(), "signed_at": now,
            "key": fingerprint(key.public_key())}


def verify_signature(keys: list[str], who: str, message: bytes, signature: str) -> str | None:
    """The fingerprint of the listed key that made ``signature``, or None."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (ValueError, TypeError):
        return None
    for text in keys:
        public = parse_public_key(text, who)
        try:
            public.verify(raw, message)
        except InvalidSignature:
            continue
        return fingerprint(public)
    return None
