"""The version store: create, list, tag, read and restore the versions of files in one repository."""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from storage.backend import Backend
from storage.errors import AlreadyExists, IntegrityError, InvalidInput, Locked, NotFound
from storage.objects import ChunkerParams, Codec, Index
from storage.versions.check import check_versions
from storage.versions.content import RUN_PREFIX, ContentWriter, StoredContent, load_content
from storage.versions.diff import diff_contents
from storage.versions.records import (CONTENT, FILES, TAG_KIND, TAGS, Version, decode_record, encode_record,
                                      file_key, record_name, record_number, tag_name)

ATTEMPTS = 200   # numbers taken by other writers before create_version gives up (each try is one listing)
_ID = re.compile(r"(\d+)-[0-9a-f]{12}")


@dataclass
class VersionStats:
    total_files: int
    total_versions: int
    total_objects: int       # distinct contents
    stored_bytes: int        # bytes of the packs written for versions (compressed, deduplicated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def normalize(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("A version needs a file path; give the path of the file it belongs to.")
    return posixpath.normpath(path.replace(os.sep, "/"))


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag or tag != tag.strip() or tag == "latest" or tag.isdigit() \
            or _ID.fullmatch(tag) or len(tag) > 200:
        raise InvalidInput(f"{tag!r} cannot be a tag; use a short name such as v1.0 (not a number, not 'latest').")
    return tag


class VersionStore:
    """Per-file version history in the repository reached through ``backend``.

    ``index`` loads the repository's chunk index (shared with backups); ``writing`` returns a
    context manager held while content is stored and a record written: the repository passes
    one that holds a lease, so no prune deletes a pack a new version has just come to rely on."""

    def __init__(self, backend: Backend, chunker: ChunkerParams, codec: Codec,
                 index: Callable[[], Index], writing: Callable[[], AbstractContextManager[Any]] | None = None):
        self.backend = backend
        self._chunker = chunker
        self._codec = codec
        self.sealer = codec.sealer
        self._index = index
        self._writing = writing or nullcontext
        self._writer: ContentWriter | None = None

    @property
    def content(self) -> ContentWriter:
        if self._writer is None:
            self._writer = ContentWriter(self.backend, self._chunker, self._codec, self._index)
        return self._writer

    # --- writing ---------------------------------------------------------------------------
    def create_version(self, file_path: str, content: bytes, author: str = "", message: str = "",
                       tags: Iterable[str] = ()) -> Version:
        """Store ``content`` as the next version of ``file_path``; its parent is the version before.
        Writers racing for the same number: one wins, the others take the next number."""
        return self.create_versions(file_path, [content], author, message, tags)[0]

    def create_versions(self, file_path: str, contents: Iterable[bytes], author: str = "", message: str = "",
                        tags: Iterable[str] = ()) -> list[Version]:
        """Several versions of one file in order, under one lease (an import of a history)."""
        path = normalize(file_path)
        tags = [check_tag(t) for t in tags]
        key = file_key(path, self.sealer)
        made: list[Version] = []
        with self._writing():
            self.content.refresh()
            latest = self._latest(key)
            for data in contents:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise InvalidInput("A version's content must be bytes; encode text first (e.g. text.encode()).")
                stored = self.content.store(bytes(data))
                latest = self._append(key, path, latest, stored, author, message)
                made.append(latest)
        for tag in tags if made else ():
            self._save_tag(key, tag, made[-1])
            made[-1].tags.append(tag)
        return made

    def _append(self, key: str, path: str, latest: Version | None, stored: StoredContent, author: str,
                message: str, at: datetime | None = None) -> Version:
        for _ in range(ATTEMPTS):
            number = latest.number + 1 if latest else 1
            when = at or datetime.now(timezone.utc)
            data, vid = encode_record(path, number, latest.version_id if latest else None, author or "", message or "",
                                      when, stored.content_hash, stored.size, self.sealer)
            try:
                self.backend.save(record_name(key, number), data, exclusive=True)
            except AlreadyExists:
                latest = self._latest(key)  # another writer took this number: follow it
                continue
            return Version(vid, path, number, latest.version_id if latest else None, author or "", message or "",
                           when, stored.content_hash, stored.size)
        raise Locked(f"Could not add a version of {path}: other writers took the next {ATTEMPTS} numbers first; "
                     "try again.")

    def copy_history(self, pairs: Iterable[tuple[str, str]], until: datetime | None = None) -> int:
        """For each ``(from_path, to_path)``, give ``to_path`` the versions ``from_path`` had at
        ``until`` (a snapshot's time), with their authors, messages, times and tags, when it has no
        history of its own: restoring a backup elsewhere brings the files' history along. Content
        is shared, so only records are written. One listing of every record finds which files
        have a history. The number of versions copied."""
        have = {o.name[len(FILES):].split("/", 1)[0] for o in self.backend.list(FILES)}
        copied = 0
        with self._writing():
            for src, dst in pairs:
                source, target = normalize(src), normalize(dst)
                key = file_key(target, self.sealer)
                if file_key(source, self.sealer) not in have or key in have or source == target:
                    continue
                latest = None
                for v in self.get_versions(source):
                    if until is not None and v.timestamp > until:
                        break
                    latest = self._append(key, target, latest, StoredContent(v.content_hash, v.size, []), v.author,
                                          v.message, v.timestamp)
                    for tag in v.tags:
                        self._save_tag(key, tag, latest)
                    copied += 1
        return copied

    def tag_version(self, file_path: str, version_id: str, tag: str) -> Version:
        """Point ``tag`` at a version (moving it if it named another one)."""
        path = normalize(file_path)
        version = self.get_version(path, version_id)
        self._save_tag(file_key(path, self.sealer), check_tag(tag), version)
        return self.get_version(path, version.version_id)

    def _save_tag(self, key: str, tag: str, version: Version) -> None:
        doc = json.dumps({"tag": tag, "version_id": version.version_id}).encode()
        self.backend.save(tag_name(key, tag, self.sealer), self.sealer.seal(TAG_KIND, doc), exclusive=False)

    # --- reading ---------------------------------------------------------------------------
    def _numbers(self, key: str) -> list[int]:
        return sorted(n for o in self.backend.list(f"{FILES}{key}/") if (n := record_number(o.name)) is not None)

    def _load(self, key: str, number: int) -> Version:
        name = record_name(key, number)
        return decode_record(self.backend.load(name), name, self.sealer)

    def _latest(self, key: str) -> Version | None:
        numbers = self._numbers(key)
        return self._load(key, numbers[-1]) if numbers else None

    def _tags(self, key: str) -> dict[str, list[str]]:
        """version id -> its tags."""
        out: dict[str, list[str]] = {}
        for o in self.backend.list(f"{TAGS}{key}/"):
            try:
                doc = self._load_tag(o.name)
            except NotFound:
                continue
            out.setdefault(doc["version_id"], []).append(doc["tag"])
        return out

    def _load_tag(self, name: str) -> dict:
        try:
            return json.loads(self.sealer.open(TAG_KIND, self.backend.load(name)))
        except (ValueError, IntegrityError) as exc:
            raise IntegrityError(f"The version tag {name} is damaged ({exc}).") from exc

    def _with_tags(self, key: str, versions: list[Version]) -> list[Version]:
        tags = self._tags(key)
        for v in versions:
            v.tags = sorted(tags.get(v.version_id, []))
        return versions

    def get_versions(self, file_path: str) -> list[Version]:
        """Every version of one file, oldest first: one listing of its own folder, one read per version."""
        key = file_key(normalize(file_path), self.sealer)
        numbers = self._numbers(key)
        with ThreadPoolExecutor(8) as pool:
            versions = list(pool.map(lambda n: self._load(key, n), numbers))
        return self._with_tags(key, versions)

    def get_latest_version(self, file_path: str) -> Version | None:
        key = file_key(normalize(file_path), self.sealer)
        latest = self._latest(key)
        return self._with_tags(key, [latest])[0] if latest else None

    def get_version(self, file_path: str, ref: str | int) -> Version:
        """A version by id, number, tag or ``latest``; NotFound names the file."""
        path = normalize(file_path)
        key = file_key(path, self.sealer)
        ref = str(ref)
        match = _ID.fullmatch(ref)
        if ref == "latest":
            found = self._latest(key)
        elif match or ref.isdigit():
            try:
                found = self._load(key, int(match.group(1) if match else ref))
            except NotFound:
                found = None
            if found is not None and match and found.version_id != ref:
                found = None
        else:
            try:
                found = self.get_version(path, self._load_tag(tag_name(key, ref, self.sealer))["version_id"])
            except NotFound:
                found = None
        if found is None:
            raise NotFound(f"{path} has no version {ref!r}; `backupflow versions list {path}` shows its versions.")
        return self._with_tags(key, [found])[0]

    def get_content(self, version: Version) -> bytes:
        stored = load_content(self.backend, version.content_hash, self.sealer)
        if stored is None:
            raise NotFound(f"The content of version {version.version_id} of {version.file_path} is missing from the "
                           "repository; run `backupflow verify`.")
        return self.content.read(stored, f"{version.file_path} version {version.version_id}")

    def diff(self, a: Version, b: Version, context: int = 3) -> str:
        return diff_contents(a, self.get_content(a), b, self.get_content(b), context)

    def restore_to(self, version: Version, target: str) -> str:
        """Write a version's content to ``target`` whole or not at all; the path written."""
        data = self.get_content(version)
        folder = os.path.dirname(os.path.abspath(target)) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".bf-version-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target

    def check(self, index: Index) -> list[tuple[str, str]]:
        """(problem, object name) for each damaged or missing part of the history (check.py)."""
        return check_versions(self, index)

    def stats(self) -> VersionStats:
        keys: set[str] = set()
        versions = 0
        for o in self.backend.list(FILES):
            keys.add(o.name[len(FILES):].split("/", 1)[0])
            versions += 1
        contents = sum(1 for _ in self.backend.list(CONTENT))
        index = self.content.index
        stored = sum(index.pack_size(p) for p, run in index.pack_run.items() if run.startswith(RUN_PREFIX))
        return VersionStats(len(keys), versions, contents, stored)
