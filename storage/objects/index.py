"""The index: where each chunk is stored, and which backup run wrote each pack.

Index objects (``index/<sha256>``) are zstd-compressed JSON::

    {"v": 1, "run": RUN_ID, "chain": CHAIN_ID,
     "packs": {PACK_ID: [[chunk_id, offset, length, raw_length, flags], ...]}}

A run writes several index objects as it goes (so an interrupted run's packs stay known and
are reused), never rewriting one. The in-memory :class:`Index` is the union of them all.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from storage.backend import Backend
from storage.crypto import PLAIN, Sealer
from storage.errors import BackupError, IntegrityError, NotFound
from storage.layout import INDEX, OBJECT_ID, index_name, list_ids, list_packs, object_id
from storage.objects.codec import Codec
from storage.objects.packs import load_pack_header_doc


INDEX_KIND = b"index"


def encode_index(doc: dict, sealer: Sealer = PLAIN) -> bytes:
    """An index object's stored bytes; its name is their SHA-256 (sealed or not)."""
    return Codec.pack_doc(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), sealer, INDEX_KIND)


@dataclass(frozen=True, slots=True)
class BlobLocation:
    pack: str
    offset: int
    length: int
    raw_length: int
    flags: int


class Index:
    def __init__(self):
        self._chunks: dict[str, BlobLocation | list[BlobLocation]] = {}
        self.pack_run: dict[str, str] = {}      # pack id -> run id that wrote it
        self.pack_chunks: dict[str, int] = {}   # pack id -> number of blobs
        self._pack_bytes: dict[str, int] = {}   # pack id -> bytes of blobs (header excluded)
        self.index_names: list[str] = []
        # Index objects that could not be read (name -> why), and the packs whose entries were
        # read from their own headers instead (damage stays local: see ``load``).
        self.damaged: dict[str, str] = {}
        self.recovered: list[str] = []

    # --- building --------------------------------------------------------------------------
    def add_pack(self, pack_id: str, run: str, blobs: list[list]) -> None:
        if pack_id in self.pack_run:
            return
        self.pack_run[pack_id] = run
        self.pack_chunks[pack_id] = len(blobs)
        # Blobs are listed in pack order, so the last one ends the data.
        self._pack_bytes[pack_id] = blobs[-1][1] + blobs[-1][2] if blobs else 0
        chunks = self._chunks
        for cid, off, length, raw, flags in blobs:
            loc = BlobLocation(pack_id, off, length, raw, flags)
            cur = chunks.get(cid)
            if cur is None:
                chunks[cid] = loc
            elif isinstance(cur, list):
                cur.append(loc)
            else:
                chunks[cid] = [cur, loc]

    @classmethod
    def load(cls, backend: Backend, threads: int = 8, sealer: Sealer = PLAIN) -> "Index":
        """The union of every readable index object. A damaged one is skipped and named in
        ``damaged``; the packs it may have listed are then indexed from their own headers
        (two ranged reads per pack not otherwise indexed), so readers go on working."""
        idx = cls()
        names = [index_name(i) for i in list_ids(backend, INDEX)]

        def fetch(name: str) -> dict | None:
            try:
                return read_index_object(backend, name, sealer)
            except IntegrityError as exc:
                idx.damaged[name] = exc.message
            except NotFound:
                pass  # rewritten by a prune between the listing and the read
            return None

        with ThreadPoolExecutor(threads) as pool:
            docs = list(pool.map(fetch, names))
        for name, doc in zip(names, docs, strict=True):
            if doc is None:
                continue
            idx.index_names.append(name)
            for pack_id, blobs in doc["packs"].items():
                idx.add_pack(pack_id, doc["run"], blobs)
        if idx.damaged:
            idx.recover_from_headers(backend, sealer)
        return idx

    def recover_from_headers(self, backend: Backend, sealer: Sealer = PLAIN) -> None:
        """Index every stored pack that no readable index object names, from its header."""
        for pack in list_packs(backend):
            if pack in self.pack_run or not OBJECT_ID.fullmatch(pack):
                continue
            try:
                header = load_pack_header_doc(backend, pack, sealer)
            except BackupError:
                continue  # a damaged pack: verify names it
            self.add_pack(pack, str(header.get("run", "")), header["blobs"])
            self.recovered.append(pack)

    # --- queries ---------------------------------------------------------------------------
    def __contains__(self, cid: str) -> bool:
        return cid in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def locations(self, cid: str) -> list[BlobLocation]:
        cur = self._chunks.get(cid)
        if cur is None:
            return []
        return cur if isinstance(cur, list) else [cur]

    def pack_size(self, pack_id: str) -> int:
        return self._pack_bytes.get(pack_id, 0)

    def chunks_in_packs(self, packs: set[str]) -> set[str]:
        out = set()
        for cid, cur in self._chunks.items():
            locs = cur if isinstance(cur, list) else (cur,)
            if any(loc.pack in packs for loc in locs):
                out.add(cid)
        return out

    def items(self):
        for cid, cur in self._chunks.items():
            for loc in (cur if isinstance(cur, list) else (cur,)):
                yield cid, loc


def read_index_object(backend: Backend, name: str, sealer: Sealer = PLAIN) -> dict:
    """One index object, checked against its name; IntegrityError names what is wrong."""
    raw = backend.load(name)
    short = object_id(name)[:12]
    if hashlib.sha256(raw).hexdigest() != object_id(name):
        raise IntegrityError(f"index object {short} is damaged: it does not match its hash.")
    try:
        doc = json.loads(Codec.unpack_doc(raw, sealer, INDEX_KIND))
    except (ValueError, IntegrityError) as exc:
        raise IntegrityError(f"index object {short} is damaged: it cannot be decoded.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("packs"), dict):
        raise IntegrityError(f"index object {short} is damaged: it lists no packs.")
    return doc


class IndexWriter:
    """Collects the packs a run uploads and writes them as index objects, batch by batch."""

    def __init__(self, backend: Backend, run: str, chain: str, batch: int = 16, sealer: Sealer = PLAIN):
        self.backend = backend
        self.sealer = sealer
        self.run = run
        self.chain = chain
        self.batch = batch
        self._pending: dict[str, list[list]] = {}
        self._lock = threading.Lock()
        self.written: list[str] = []

    def add(self, pack_id: str, blobs: list[list]) -> None:
        with self._lock:
            self._pending[pack_id] = blobs
            full = len(self._pending) >= self.batch
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        doc = {"v": 1, "run": self.run, "chain": self.chain, "packs": pending}
        data = encode_index(doc, self.sealer)
        name = index_name(hashlib.sha256(data).hexdigest())
        self.backend.save(name, data)
        with self._lock:
            self.written.append(name)
