"""The repository's ``config`` object: format version, chunker secret, compression, pack size.

It is the first object written and the only one that names the format; a location without
it is not a repository. See docs/FORMAT.md.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from storage.errors import NotARepository
from storage.objects.chunker import ChunkerParams

FORMAT_NAME = "backupflow-repository"
FORMAT_VERSION = 1
CONFIG_NAME = "config"


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
        return cls(
            id=uuid.uuid4().hex,
            created=datetime.now(timezone.utc).isoformat(),
            chunker=ChunkerParams(seed=secrets.randbits(63)),
            compression_level=compression_level,
            pack_size=pack_size_mib * 1024 * 1024,
        )

    def to_bytes(self) -> bytes:
        return json.dumps({
            "format": FORMAT_NAME, "version": self.version, "id": self.id, "created": self.created,
            "chunker": self.chunker.to_json(),
            "compression": {"algorithm": "zstd", "level": self.compression_level},
            "pack_size": self.pack_size, "encryption": self.encryption,
        }, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "RepoConfig":
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT_NAME:
                raise ValueError("not ours")
        except ValueError as exc:
            raise NotARepository(f"{where} holds a 'config' that is not a backupflow repository's.") from exc
        if doc["version"] > FORMAT_VERSION:
            raise NotARepository(
                f"{where} uses repository format {doc['version']}; this backupflow reads up to {FORMAT_VERSION}. Upgrade backupflow."
            )
        if doc.get("encryption"):
            raise NotARepository(f"{where} is encrypted, which this version of backupflow cannot open yet.")
        return cls(
            id=doc["id"], created=doc["created"], chunker=ChunkerParams.from_json(doc["chunker"]),
            compression_level=doc["compression"]["level"], pack_size=doc["pack_size"],
            encryption=doc.get("encryption"), version=doc["version"],
        )
