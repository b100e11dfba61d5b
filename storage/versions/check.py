"""Checking the version history (``verify`` runs it): every record decodes and matches its
checksum, each file's numbers run 1, 2, ... with each parent the version before, and every
content a record names is described and has all its chunks in the index."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from storage.errors import BackupError, NotFound
from storage.objects import Index
from storage.versions.content import load_content
from storage.versions.records import FILES, Version, content_name, decode_record, record_number

if TYPE_CHECKING:
    from storage.versions.store import VersionStore


def _read(store: VersionStore, name: str) -> Version | str:
    try:
        return decode_record(store.backend.load(name), name, store.sealer)
    except NotFound:
        return ""  # gone between listing and reading: versions are never deleted, so a race is not this
    except BackupError as exc:
        return exc.message


def check_versions(store: VersionStore, index: Index) -> list[tuple[str, str]]:
    """(problem, object name) for everything wrong with the version history."""
    names = [o.name for o in store.backend.list(FILES) if record_number(o.name) is not None]
    with ThreadPoolExecutor(8) as pool:
        read = list(pool.map(lambda n: _read(store, n), names))
    problems: list[tuple[str, str]] = []
    files: dict[str, list[tuple[str, Version]]] = {}
    for name, got in zip(names, read, strict=True):
        if isinstance(got, str):
            if got:
                problems.append((got, name))
            continue
        files.setdefault(name.rsplit("/", 1)[0], []).append((name, got))
    contents: dict[str, str] = {}
    for records in files.values():
        previous: Version | None = None
        for name, v in sorted(records, key=lambda r: r[1].number):
            expected = previous.number + 1 if previous else 1
            if v.number != expected or v.parent_id != (previous.version_id if previous else None):
                problems.append((f"version {v.version_id} of {v.file_path} does not follow version {expected - 1} "
                                 "(a record is missing or out of line)", name))
            contents.setdefault(v.content_hash, f"{v.file_path} version {v.version_id}")
            previous = v
    for content_hash, what in contents.items():
        stored = load_content(store.backend, content_hash, store.sealer)
        if stored is None:
            problems.append((f"the content of {what} is not described (its content record is missing)",
                             content_name(content_hash, store.sealer)))
        elif any(cid not in index for cid in stored.chunks):
            problems.append((f"the content of {what} names chunks the index does not hold",
                             content_name(content_hash, store.sealer)))
    return problems
