"""Sealing objects: AES-256-GCM under a fresh subkey per object, and keyed content ids
(HMAC-SHA-256 under the id key of the content's SHA-256).

A sealed object is ``r (28 random bytes) || AES-256-GCM(subkey, nonce, plaintext, aad)``
with ``subkey = HKDF-Expand-SHA-256(encryption key, info = "bf-object" || kind || r[:16])``
(one HMAC block), ``nonce = r[16:28]`` and ``aad = kind``. Each subkey seals one object, so
GCM's per-key limits (2^32 messages with random nonces, 64 GiB per message) are never
approached: docs/FORMAT.md, "encryption", gives the numbers.
"""

from __future__ import annotations

import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import IntegrityError

SALT = 16
NONCE = 12
TAG = 16
OVERHEAD = SALT + NONCE + TAG  # bytes a sealed object is longer than its plaintext


class Sealer:
    """The unencrypted repository's sealer: objects are stored as they are, ids are SHA-256."""

    encrypted = False

    def content_id(self, data) -> str:
        """The id of a chunk, tree or manifest: lowercase hex SHA-256 of ``data``."""
        return self.id_of_sha256(hashlib.sha256(data).digest())

    def id_of_sha256(self, digest: bytes) -> str:
        """The id of content whose SHA-256 is ``digest`` (so a file's one chunk is hashed once)."""
        return digest.hex()

    def seal(self, kind: bytes, data, out: bytearray | None = None):
        """``data`` sealed; with ``out`` (at least ``len(data) + OVERHEAD`` bytes), written into
        it and returned as a view of it, so a large blob costs no fresh buffer."""
        return bytes(data)

    def open(self, kind: bytes, data, out: bytearray | None = None):
        """``data`` opened (IntegrityError when it fails authentication); with ``out`` (at
        least ``len(data) - OVERHEAD`` bytes), into it, as a view of it."""
        return bytes(data)


PLAIN = Sealer()


def sealed_repository(config: bytes) -> bool:
    """Whether a repository's ``config`` bytes say it is encrypted (its plaintext part only;
    storage/repository/format.py reads and checks the whole config)."""
    try:
        doc = json.loads(config)
    except ValueError:
        return False
    return isinstance(doc, dict) and bool(doc.get("encryption"))


class _Hmac:
    """HMAC-SHA-256 under one key (RFC 2104) with its two padded-key blocks hashed once: a MAC
    then costs two copies of a hash state, where ``hmac.digest`` fetches the algorithm and hashes
    the padded key on every call (2.5 times as long; it runs for every blob sealed or opened and
    every chunk id)."""

    def __init__(self, key: bytes):
        padded = key.ljust(64, b"\0")  # keys here are 32 bytes, under SHA-256's 64-byte block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class AeadSealer(Sealer):
    """Seals with AES-256-GCM; ids are HMAC-SHA-256 under the id key (docs/FORMAT.md)."""

    encrypted = True

    def __init__(self, encryption_key: bytes, id_key: bytes):
        if len(encryption_key) != 32 or len(id_key) != 32:
            raise ValueError("an AeadSealer needs two 32-byte keys")
        self._enc = _Hmac(encryption_key)
        self._id = _Hmac(id_key)

    def id_of_sha256(self, digest: bytes) -> str:
        # HMAC over the SHA-256, not over the data: the data is hashed once, at SHA-256's speed,
        # for both the keyed id and the plain whole-file hash a tree keeps.
        return self._id.digest(digest).hex()

    def _subkey(self, kind: bytes, salt: bytes) -> AESGCM:
        # HKDF-Expand with a 32-byte output is one HMAC block: T(1) = HMAC(PRK, info || 0x01).
        return AESGCM(self._enc.digest(b"bf-object" + kind + salt + b"\x01"))

    def seal(self, kind: bytes, data, out: bytearray | None = None):
        r = os.urandom(SALT + NONCE)
        aead = self._subkey(kind, r[:SALT])
        if out is None:
            return r + aead.encrypt(r[SALT:], data, kind)
        view = memoryview(out)[:len(data) + OVERHEAD]
        view[:SALT + NONCE] = r
        aead.encrypt_into(r[SALT:], data, kind, view[SALT + NONCE:])
        return view

    def open(self, kind: bytes, data, out: bytearray | None = None):
        if len(data) < OVERHEAD:
            raise IntegrityError(f"an encrypted {kind.decode()} is too short to be one (cut off)")
        r = bytes(data[:SALT + NONCE])
        body = memoryview(data)[SALT + NONCE:]  # a view: slicing bytes would copy the blob
        aead = self._subkey(kind, r[:SALT])
        try:
            if out is None:
                return aead.decrypt(r[SALT:], body, kind)
            view = memoryview(out)[:len(body) - TAG]
            aead.decrypt_into(r[SALT:], body, kind, view)
            return view
        except InvalidTag:
            raise IntegrityError(f"an encrypted {kind.decode()} fails authentication (damaged or "
                                 "replaced)") from None
