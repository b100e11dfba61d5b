"""The repository's ``config`` object: format version, chunker secret, compression, pack size.

It is the first object written and the only one that names the format; a location without
it is not a repository. In an encrypted repository (version 2) only ``format``, ``version``,
``encryption`` and ``checksum`` are plaintext; the rest is sealed in ``sealed``. See
docs/FORMAT.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from storage.crypto import PLAIN, Sealer
from storage.errors import BackupError, IntegrityError, InvalidConfig, NotARepository, PasswordRequired
from storage.layout import CONFIG, KEYS
from storage.objects.chunker import ChunkerParams

FORMAT_NAME = "backupflow-repository"
PLAIN_VERSION = 1       # unencrypted repositories keep the version older readers read
ENCRYPTED_VERSION = 2
FORMAT_VERSION = ENCRYPTED_VERSION  # the newest this backupflow reads
CONFIG_NAME = CONFIG
# AES-256-GCM, a subkey per object by HKDF-SHA-256, ids by HMAC-SHA-256 (storage/crypto/sealer.py)
SCHEME = "aes256gcm-hkdf-hmac"
ENCRYPTION = {"scheme": SCHEME, "kdf": "scrypt", "keys": KEYS}


def config_checksum(doc: dict) -> str:
    """sha256 of the config's canonical JSON without its ``checksum`` key (docs/FORMAT.md)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _damaged(where: str, why: str) -> IntegrityError:
    return IntegrityError(f"The repository config of {where} is damaged ({why}); put back the `config` object "
                          "from a copy of the repository (it holds the chunker secret, which cannot be rebuilt).")


def _looks_like_ours(data: bytes, doc: object) -> bool:
    """A config we wrote, even if damaged (as opposed to some other program's file)."""
    if isinstance(doc, dict):
        return "checksum" in doc or "sealed" in doc or {"chunker", "pack_size"} <= doc.keys()
    return b"backupflow" in data or b'"chunker"' in data


@dataclass
class RepoConfig:
    id: str
    created: str
    chunker: ChunkerParams
    compression_level: int
    pack_size: int
    encryption: dict | None = None
    version: int = PLAIN_VERSION

    @classmethod
    def new(cls, compression_level: int = 3, pack_size_mib: int = 16, chunker_seed: int | None = None,
            encrypted: bool = False) -> "RepoConfig":
        # Checked here, at the only place a level is written: one out of zstd's range would
        # be accepted now and make every later backup fail.
        if not 0 <= compression_level <= 22:
            raise InvalidConfig(f"Compression level {compression_level} is not a zstd level; give 1-22, or 0 for none.")
        return cls(
            id=uuid.uuid4().hex,
            created=datetime.now(timezone.utc).isoformat(),
            chunker=ChunkerParams(seed=secrets.randbits(63) if chunker_seed is None else chunker_seed),
            compression_level=compression_level,
            pack_size=pack_size_mib * 1024 * 1024,
            encryption=dict(ENCRYPTION) if encrypted else None,
            version=ENCRYPTED_VERSION if encrypted else PLAIN_VERSION,
        )

    def _body(self) -> dict:
        return {"id": self.id, "created": self.created, "chunker": self.chunker.to_json(),
                "compression": {"algorithm": "zstd", "level": self.compression_level}, "pack_size": self.pack_size}

    def to_bytes(self, sealer: Sealer = PLAIN) -> bytes:
        if self.encryption:
            if not sealer.encrypted:
                raise ValueError("an encrypted repository's config is written with its sealer")
            sealed = sealer.seal(b"config", json.dumps(self._body(), sort_keys=True).encode())
            doc = {"format": FORMAT_NAME, "version": self.version, "encryption": self.encryption,
                   "sealed": base64.b64encode(sealed).decode()}
        else:
            doc = {"format": FORMAT_NAME, "version": self.version, **self._body(), "encryption": None}
        doc["checksum"] = config_checksum(doc)
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str, sealer: Sealer = PLAIN) -> "RepoConfig":
        """The config; an encrypted one needs the repository's sealer (``is_encrypted`` tells)."""
        doc = _parse(data, where)
        if doc.get("encryption"):
            doc = {**doc, **_unseal(doc, where, sealer)}
        try:
            return cls(
                id=doc["id"], created=doc["created"], chunker=ChunkerParams.from_json(doc["chunker"]),
                compression_level=int(doc["compression"]["level"]), pack_size=int(doc["pack_size"]),
                encryption=doc.get("encryption"), version=doc["version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(where, f"{exc.__class__.__name__}: {exc}") from exc


def is_encrypted(data: bytes, where: str) -> bool:
    """Whether the config ``data`` is an encrypted repository's (checked like any read of it)."""
    return bool(_parse(data, where).get("encryption"))


def _unseal(doc: dict, where: str, sealer: Sealer) -> dict:
    if not sealer.encrypted:
        raise PasswordRequired(f"{where} is encrypted; give its password.")
    enc = doc["encryption"]
    if not isinstance(enc, dict) or enc.get("scheme") != SCHEME:
        raise NotARepository(f"{where} is encrypted with a scheme this backupflow does not know; upgrade backupflow.")
    try:
        body = json.loads(sealer.open(b"config", base64.b64decode(doc.get("sealed", ""), validate=True)))
    except (BackupError, ValueError) as exc:
        raise _damaged(where, "its encrypted part does not open with the repository's key") from exc
    if not isinstance(body, dict):
        raise _damaged(where, "its encrypted part is not the JSON backupflow wrote")
    return body


def _parse(data: bytes, where: str) -> dict:
    """The config's JSON, checked: NotARepository for someone else's file, IntegrityError for ours damaged.
    A config without ``checksum`` (written before it existed) is accepted as it is."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        if _looks_like_ours(data, doc):
            raise _damaged(where, "it is not the JSON backupflow wrote")
        raise NotARepository(f"{where} holds a 'config' that is not a backupflow repository's.")
    if "checksum" in doc and doc["checksum"] != config_checksum(doc):
        raise _damaged(where, "its checksum does not match its content")
    if not isinstance(doc.get("version"), int):
        raise _damaged(where, "its version is not a number")
    if doc["version"] > FORMAT_VERSION:
        raise NotARepository(f"{where} uses repository format {doc['version']}; this backupflow reads up to "
                             f"{FORMAT_VERSION}. Upgrade backupflow.")
    return doc
