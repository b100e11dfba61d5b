"""The repository's ``config`` object: format version, chunker secret, compression, pack size.

It is the first object written and the only one that names the format; a location without
it is not a repository. See docs/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from storage.errors import IntegrityError, InvalidConfig, NotARepository
from storage.layout import CONFIG
from storage.objects.chunker import ChunkerParams

FORMAT_NAME = "backupflow-repository"
FORMAT_VERSION = 1
CONFIG_NAME = CONFIG


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
        return "checksum" in doc or {"chunker", "pack_size"} <= doc.keys()
    return b"backupflow" in data or b'"chunker"' in data


@dataclass
class RepoConfig:
    id: str
    created: str
    chunker: ChunkerParams
    compression_level: int
    pack_size: int
    encryption: dict | None = None
    version: int = FORMAT_VERSION

    @classmethod
    def new(cls, compression_level: int = 3, pack_size_mib: int = 16) -> "RepoConfig":
        # Checked here, at the only place a level is written: one out of zstd's range would
        # be accepted now and make every later backup fail.
        if not 0 <= compression_level <= 22:
            raise InvalidConfig(f"Compression level {compression_level} is not a zstd level; give 1-22, or 0 for none.")
        return cls(
            id=uuid.uuid4().hex,
            created=datetime.now(timezone.utc).isoformat(),
            chunker=ChunkerParams(seed=secrets.randbits(63)),
            compression_level=compression_level,
            pack_size=pack_size_mib * 1024 * 1024,
        )

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT_NAME, "version": self.version, "id": self.id, "created": self.created,
            "chunker": self.chunker.to_json(),
            "compression": {"algorithm": "zstd", "level": self.compression_level},
            "pack_size": self.pack_size, "encryption": self.encryption,
        }
        doc["checksum"] = config_checksum(doc)
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "RepoConfig":
        doc = _parse(data, where)
        if doc["version"] > FORMAT_VERSION:
            raise NotARepository(
                f"{where} uses repository format {doc['version']}; this backupflow reads up to {FORMAT_VERSION}. "
                "Upgrade backupflow."
            )
        if doc.get("encryption"):
            raise NotARepository(f"{where} is encrypted, which this version of backupflow cannot open yet.")
        try:
            return cls(
                id=doc["id"], created=doc["created"], chunker=ChunkerParams.from_json(doc["chunker"]),
                compression_level=int(doc["compression"]["level"]), pack_size=int(doc["pack_size"]),
                encryption=doc.get("encryption"), version=doc["version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(where, f"{exc.__class__.__name__}: {exc}") from exc


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
    return doc
