"""Snapshot manifests and the store that lists, loads, saves and resolves them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Required, TypedDict, get_args

from storage.backend import Backend
from storage.crypto import PLAIN, Sealer
from storage.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from storage.layout import OBJECT_ID, SNAPSHOTS, object_id, snapshot_name, tree_name
from storage.objects.codec import Codec
from storage.snapshots.names import dump_json, dump_tree, load_tree_json

SnapshotType = Literal["full", "incremental", "differential"]
SNAPSHOT_TYPES: tuple[SnapshotType, ...] = get_args(SnapshotType)
EntryType = Literal["file", "dir", "symlink", "hardlink"]


class TreeEntry(TypedDict, total=False):
    """One entry of a snapshot's tree: the table "snapshot manifest" in docs/FORMAT.md."""

    path: Required[str]
    type: Required[EntryType]
    mode: Required[int]
    mtime_ns: Required[int]
    size: int                  # file
    ctime_ns: int              # file
    ino: int                   # file
    chunks: list[str]          # file
    sha256: str                # file
    changed_while_read: bool   # file
    target: str                # symlink
    link: str                  # hardlink


# Manifest keys a reader relies on, with the JSON types they must have (docs/FORMAT.md).
_REQUIRED: dict[str, type] = {"type": str, "run": str, "chain": str, "time": str, "host": str, "source": str,
                              "tree_id": str}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "parent": (str, type(None)), "base_full": (str, type(None)), "tags": list, "description": str,
    "author": str, "stats": dict, "packs": list}


def _check_manifest(doc: Any) -> str | None:
    """Why a decoded manifest cannot be used, or None when it can."""
    if not isinstance(doc, dict):
        return f"it holds a JSON {type(doc).__name__}, not an object"
    for key, kind in _REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            return f"its {key!r} is missing or not a {kind.__name__}"
    for key, kinds in _OPTIONAL.items():
        if key in doc and not isinstance(doc[key], kinds):
            return f"its {key!r} has the wrong type"
    if doc["type"] not in SNAPSHOT_TYPES:
        return f"its type {doc['type']!r} is not one of {', '.join(SNAPSHOT_TYPES)}"
    if not all(isinstance(p, str) for p in doc.get("packs", [])):
        return "its 'packs' is not a list of pack ids"
    return None


@dataclass
class Snapshot:
    type: SnapshotType
    run: str
    chain: str
    time: str
    host: str
    source: str
    parent: str | None = None
    base_full: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str = ""
    author: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    packs: list[str] = field(default_factory=list)
    # The tree lives in its own object (``trees/<tree_id>``), so listing snapshots reads only
    # small manifests and memory stays flat however many snapshots there are. ``tree`` is None
    # on a header (SnapshotStore.header/all) and the entries on a full load.
    tree: list[TreeEntry] | None = None
    tree_id: str = ""
    version: int = 1
    id: str = ""  # not stored: it is the hash of the stored JSON

    @property
    def entries(self) -> list[TreeEntry]:
        """The tree of a fully loaded snapshot (SnapshotStore.load)."""
        if self.tree is None:
            raise ValueError(f"snapshot {self.id[:8]} was loaded without its tree")
        return self.tree

    def to_bytes(self) -> bytes:
        # Not dataclasses.asdict: it deep-copies every field (1.4 s for a tree of 20,000
        # entries), and a manifest's fields are written as they are.
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("id", "tree")}
        return dump_json(doc)

    @classmethod
    def from_bytes(cls, data: bytes, sid: str) -> "Snapshot":
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"snapshot {sid[:8]} is damaged: its manifest is not valid JSON ({exc}).") from exc
        why = _check_manifest(doc)
        if why:
            raise IntegrityError(f"snapshot {sid[:8]} is damaged: {why}.")
        known = {f for f in cls.__dataclass_fields__}
        snap = cls(**{k: v for k, v in doc.items() if k in known})
        snap.id = sid
        return snap

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "short_id": self.id[:8], "type": self.type, "time": self.time,
            "host": self.host, "source": self.source, "parent": self.parent,
            "base_full": self.base_full, "chain": self.chain, "tags": self.tags,
            "description": self.description, "author": self.author, "stats": self.stats,
        }


TREE_KIND = b"tree"
SNAPSHOT_KIND = b"snapshot"


def _kind(name: str) -> bytes:
    return SNAPSHOT_KIND if name.startswith(SNAPSHOTS) else TREE_KIND


def _load_verified(backend: Backend, name: str, digest: str, label: str, sealer: Sealer = PLAIN) -> bytes:
    """The uncompressed JSON of ``name``, checked against ``digest`` (its content id: SHA-256, or
    the keyed id in an encrypted repository); ``label`` names it."""
    try:
        data = Codec.unpack_doc(backend.load(name), sealer, _kind(name))
    except IntegrityError as exc:
        raise IntegrityError(f"{label} is damaged: it does not decode ({exc.message})") from exc
    if sealer.content_id(data) != digest:
        raise IntegrityError(f"{label} is damaged: it does not match its hash.")
    return data


def damaged_names(damaged: dict[str, str]) -> str:
    """'abcd1234 (why), ...' for warnings about skipped snapshots."""
    items = [f"{sid[:8]} ({why})" for sid, why in sorted(damaged.items())]
    return "; ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


class SnapshotStore:
    def __init__(self, backend: Backend, sealer: Sealer = PLAIN):
        self.backend = backend
        self.sealer = sealer
        self._cache: dict[str, Snapshot] = {}
        # Filled by all(): manifests that could not be read (id -> why) and names under
        # snapshots/ that are not snapshot ids. Commands skip them, name them, and go on.
        self.damaged: dict[str, str] = {}
        self.strays: list[str] = []

    def ids(self) -> list[str]:
        ids: list[str] = []
        strays: list[str] = []
        for o in self.backend.list(SNAPSHOTS):
            name = object_id(o.name)
            (ids if OBJECT_ID.fullmatch(name) else strays).append(name)
        self.strays = strays
        return ids

    def header(self, sid: str) -> Snapshot:
        """The manifest without its tree (cached: manifests are small and never change)."""
        snap = self._cache.get(sid)
        if snap is None:
            data = _load_verified(self.backend, snapshot_name(sid), sid, f"snapshot {sid[:8]}", self.sealer)
            snap = Snapshot.from_bytes(data, sid)
            self._cache[sid] = snap
        return snap

    def load_tree(self, snap: Snapshot) -> list[TreeEntry]:
        label = f"tree {snap.tree_id[:8]} of snapshot {snap.id[:8]}"
        try:
            data = _load_verified(self.backend, tree_name(snap.tree_id), snap.tree_id, label, self.sealer)
            tree = load_tree_json(data)
        except ValueError as exc:
            raise IntegrityError(f"{label} is damaged: it is not valid JSON.") from exc
        except NotFound as exc:
            raise IntegrityError(f"{label} is missing: {tree_name(snap.tree_id)} does not exist.") from exc
        if not isinstance(tree, list) or not all(isinstance(e, dict) and isinstance(e.get("path"), str) for e in tree):
            raise IntegrityError(f"{label} is damaged: it is not a list of entries.")
        return tree

    def load(self, sid: str) -> Snapshot:
        """The whole snapshot, tree included (not cached, so memory does not grow with use)."""
        head = self.header(sid)
        return replace(head, tree=self.load_tree(head))

    def _try_header(self, sid: str) -> Snapshot | None:
        try:
            return self.header(sid)
        except IntegrityError as exc:
            self.damaged[sid] = exc.message
        except NotFound:
            pass  # forgotten between the listing and the read
        return None

    def all(self) -> list[Snapshot]:
        """Every readable snapshot's header, oldest first; damaged ones are left out and
        recorded in ``damaged`` (one damaged manifest must not take every command down)."""
        ids = self.ids()
        self.damaged = {}
        with ThreadPoolExecutor(8) as pool:
            snaps = [s for s in pool.map(self._try_header, ids) if s is not None]
        return sorted(snaps, key=lambda s: (s.time, s.id))

    def save(self, snap: Snapshot, same_tree_as: str | None = None) -> str:
        """Write the tree, then the manifest that names it (the snapshot exists from then on).
        ``same_tree_as``: the id of a stored tree equal to this one (a backup that changed
        nothing), which is named instead of encoding, sealing and writing the same tree again."""
        if snap.tree is None:
            raise ValueError("a snapshot is saved with its tree")
        if same_tree_as is not None and self._exists(tree_name(same_tree_as)):
            snap.tree_id = same_tree_as
        else:
            tree = dump_tree(snap.tree)
            snap.tree_id = self.sealer.content_id(tree)
            self._save_healing(tree_name(snap.tree_id), snap.tree_id, tree)
        data = snap.to_bytes()
        sid = self.sealer.content_id(data)
        self._save_healing(snapshot_name(sid), sid, data)
        snap.id = sid
        self._cache[sid] = replace(snap, tree=None)
        return sid

    def remove(self, ids: list[str]) -> list[str]:
        """Delete these manifests (the snapshots stop existing; their data stays for prune).
        One already gone counts as removed: a rerun of a killed forget or repair completes."""
        for sid in ids:
            try:
                self.backend.remove(snapshot_name(sid))
            except NotFound:
                pass
            self._cache.pop(sid, None)
        return list(ids)

    def _exists(self, name: str) -> bool:
        try:
            self.backend.stat(name)
            return True
        except NotFound:
            return False

    def _save_healing(self, name: str, digest: str, data: bytes) -> None:
        """Save a hash-named document; an object already there that does not match its own name
        is damaged (the same tree again, after its stored copy was hit) and is replaced."""
        # Trees at zstd level 1: on the benchmark workspace's 7 MB tree, 2.10 MB in 9.5 ms
        # against 2.23 MB in 21 ms at level 3 (its hex ids do not reward the slower search).
        kind = _kind(name)
        packed = Codec.pack_doc(data, self.sealer, kind, level=1 if kind == TREE_KIND else 3)
        try:
            self.backend.save(name, packed)
        except AlreadyExists:
            try:
                _load_verified(self.backend, name, digest, name, self.sealer)
                return  # intact, written by another run in another encoding: same content
            except IntegrityError:
                self.backend.remove(name)
                self.backend.save(name, packed)

    def resolve(self, ref: str) -> Snapshot:
        """An id, a unique id prefix, or ``latest``."""
        ref = (ref or "").strip()
        if not ref:
            raise InvalidInput("No snapshot given; name one by id, unique id prefix, or 'latest'.")
        if ref == "latest":
            snaps = self.all()
            if not snaps:
                raise NotFound("The repository has no snapshots yet; run `backupflow backup` first.")
            return self.load(snaps[-1].id)
        return self.load(self.resolve_id(ref))

    def resolve_id(self, ref: str) -> str:
        """The full id for an id or unique id prefix, without reading the manifest (so a
        damaged snapshot can still be named, e.g. to forget it)."""
        ref = (ref or "").strip().lower()
        matches = [i for i in self.ids() if i.startswith(ref)] if ref else []
        if not matches:
            raise NotFound(f"No snapshot matches {ref!r}; list them with `backupflow snapshots`.")
        if len(matches) > 1:
            raise InvalidInput(f"{ref!r} matches {len(matches)} snapshots; give more characters of the id.")
        return matches[0]
