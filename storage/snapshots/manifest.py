"""Snapshot manifests and the store that lists, loads, saves and resolves them."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

from storage.backend import Backend
from storage.errors import IntegrityError, InvalidInput, NotFound
from storage.objects.codec import Codec

SNAPSHOT_TYPES = ("full", "incremental", "differential")


@dataclass
class Snapshot:
    type: str
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
    tree: list[dict[str, Any]] | None = None
    tree_id: str = ""
    version: int = 1
    id: str = ""  # not stored: it is the hash of the stored JSON

    def to_bytes(self) -> bytes:
        # Not dataclasses.asdict: it deep-copies, which cost 1.4 s of a 2 s unchanged
        # re-backup of 20,000 files when the tree was part of the manifest.
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("id", "tree")}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes, sid: str) -> "Snapshot":
        doc = json.loads(data)
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


def snapshot_name(sid: str) -> str:
    return f"snapshots/{sid}"


def tree_name(tree_id: str) -> str:
    return f"trees/{tree_id}"


def _load_verified(backend: Backend, name: str, digest: str, what: str) -> bytes:
    data = Codec.unpack_doc(backend.load(name))
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(f"{what} {digest[:8]} does not match its hash; the repository is damaged.")
    return data


class SnapshotStore:
    def __init__(self, backend: Backend):
        self.backend = backend
        self._cache: dict[str, Snapshot] = {}

    def ids(self) -> list[str]:
        return [o.name.rsplit("/", 1)[-1] for o in self.backend.list("snapshots/")]

    def header(self, sid: str) -> Snapshot:
        """The manifest without its tree (cached: manifests are small and never change)."""
        snap = self._cache.get(sid)
        if snap is None:
            snap = Snapshot.from_bytes(_load_verified(self.backend, snapshot_name(sid), sid, "snapshot"), sid)
            self._cache[sid] = snap
        return snap

    def load_tree(self, snap: Snapshot) -> list[dict[str, Any]]:
        return json.loads(_load_verified(self.backend, tree_name(snap.tree_id), snap.tree_id, "the tree of snapshot"))

    def load(self, sid: str) -> Snapshot:
        """The whole snapshot, tree included (not cached, so memory does not grow with use)."""
        head = self.header(sid)
        return replace(head, tree=self.load_tree(head))

    def all(self) -> list[Snapshot]:
        """Every snapshot's header, oldest first."""
        ids = self.ids()
        with ThreadPoolExecutor(8) as pool:
            snaps = list(pool.map(self.header, ids))
        return sorted(snaps, key=lambda s: (s.time, s.id))

    def save(self, snap: Snapshot) -> str:
        """Write the tree, then the manifest that names it (the snapshot exists from then on)."""
        if snap.tree is None:
            raise ValueError("a snapshot is saved with its tree")
        tree = json.dumps(snap.tree, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
        snap.tree_id = hashlib.sha256(tree).hexdigest()
        self.backend.save(tree_name(snap.tree_id), Codec.pack_doc(tree))
        data = snap.to_bytes()
        sid = hashlib.sha256(data).hexdigest()
        self.backend.save(snapshot_name(sid), Codec.pack_doc(data))
        snap.id = sid
        self._cache[sid] = replace(snap, tree=None)
        return sid

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
        matches = [i for i in self.ids() if i.startswith(ref.lower())]
        if not matches:
            raise NotFound(f"No snapshot matches {ref!r}; list them with `backupflow snapshots`.")
        if len(matches) > 1:
            raise InvalidInput(f"{ref!r} matches {len(matches)} snapshots; give more characters of the id.")
        return self.load(matches[0])
