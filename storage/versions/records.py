"""Version records and the names they are stored under (docs/FORMAT.md, "versions").

A file's history is a numbered sequence: version ``n`` of the file whose path hashes to ``key``
is the object ``versions/files/<key>/<n:010d>``, created with an exclusive write, so two
writers of the same number cannot both succeed and the numbers (and parent links) stay linear.
A listing of that one folder is the file's index: its length does not depend on how many other
files or versions the repository holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.crypto import PLAIN, Sealer
from storage.errors import IntegrityError
from storage.layout import VERSIONS, object_id

FILES = f"{VERSIONS}files/"      # versions/files/<key>/<number:010d>: one record per version
TAGS = f"{VERSIONS}tags/"        # versions/tags/<key>/<sha256(tag)[:32]>: a tag -> a version
CONTENT = f"{VERSIONS}content/"  # versions/content/<sha256 of the content>: its chunks
PINS = f"{VERSIONS}pins/"        # versions/pins/<pack id>: a backup's pack that versions use too
RECORD_NAME = re.compile(r"\d{10}")
# What each kind of object is sealed as in an encrypted repository (docs/FORMAT.md, "encryption").
RECORD_KIND, TAG_KIND, CONTENT_KIND = b"version", b"version tag", b"version content"


def file_key(path: str, sealer: Sealer = PLAIN) -> str:
    """The folder name of one file's history: the repository's id of the SHA-256 of its path
    (keyed in an encrypted repository, so names reveal no path)."""
    return sealer.id_of_sha256(hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest())


def record_name(key: str, number: int) -> str:
    return f"{FILES}{key}/{number:010d}"


def tag_name(key: str, tag: str, sealer: Sealer = PLAIN) -> str:
    return f"{TAGS}{key}/{sealer.id_of_sha256(hashlib.sha256(tag.encode()).digest())[:32]}"


def content_name(content_hash: str, sealer: Sealer = PLAIN) -> str:
    return f"{CONTENT}{sealer.id_of_sha256(bytes.fromhex(content_hash))}"


def pin_name(pack_id: str) -> str:
    return f"{PINS}{pack_id}"


def record_number(name: str) -> int | None:
    last = object_id(name)
    return int(last) if RECORD_NAME.fullmatch(last) else None


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class Version:
    """One version of one file. ``version_id`` is ``<number>-<12 hex digits of the record's hash>``:
    unique, and it names where the record lives (its number) without a search."""

    version_id: str
    file_path: str
    number: int
    parent_id: str | None
    author: str
    message: str
    timestamp: datetime
    content_hash: str   # SHA-256 of the content
    size: int
    tags: list[str] = field(default_factory=list)

    @property
    def parent(self) -> str | None:
        return self.parent_id

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "file_path": self.file_path, "number": self.number,
                "parent_id": self.parent_id, "author": self.author, "message": self.message,
                "timestamp": self.timestamp.isoformat(), "content_hash": self.content_hash, "size": self.size,
                "tags": list(self.tags)}


def encode_record(path: str, number: int, parent: str | None, author: str, message: str, when: datetime,
                  content_hash: str, size: int, sealer: Sealer = PLAIN) -> tuple[bytes, str]:
    """(the stored record, its version id). The record carries its own checksum (it is named by
    its number, not its hash), like the repository config."""
    doc: dict[str, Any] = {"v": 1, "path": path, "number": number, "parent": parent, "author": author,
                           "message": message, "time": when.isoformat(), "content_hash": content_hash,
                           "size": size}
    digest = hashlib.sha256(canonical(doc)).hexdigest()
    doc["id"] = f"{number}-{digest[:12]}"
    doc["checksum"] = digest
    return sealer.seal(RECORD_KIND, canonical(doc)), doc["id"]


def decode_record(data: bytes, name: str, sealer: Sealer = PLAIN) -> Version:
    try:
        doc = json.loads(sealer.open(RECORD_KIND, data))
        body = {k: v for k, v in doc.items() if k not in ("id", "checksum")}
        ok = hashlib.sha256(canonical(body)).hexdigest() == doc["checksum"]
        ok = ok and doc["id"] == f"{doc['number']}-{doc['checksum'][:12]}"
        version = Version(doc["id"], doc["path"], int(doc["number"]), doc["parent"], doc["author"], doc["message"],
                          datetime.fromisoformat(doc["time"]), doc["content_hash"], int(doc["size"]))
    except (ValueError, KeyError, TypeError, AttributeError, IntegrityError) as exc:
        raise IntegrityError(f"The version record {name} is damaged (it cannot be decoded: {exc}).") from exc
    if not ok or record_number(name) not in (None, version.number):
        raise IntegrityError(f"The version record {name} is damaged (it does not match its checksum).")
    return version
