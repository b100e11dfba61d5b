"""A version's content in the repository's chunk store: the same chunker, packs and index as
backups, so content a backup (or another version) already holds costs nothing.

Each piece of content is described once, by ``versions/content/<sha256>`` (its chunk ids and
size): a second version with the same content finds it there and stores nothing. New chunks go
into a pack written by a run whose id starts with ``versions-``; a chunk found in a backup's pack
pins that pack (``versions/pins/<pack id>``), so prune keeps both (:func:`version_packs`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Callable

from storage.backend import Backend
from storage.crypto import PLAIN, Sealer
from storage.errors import AlreadyExists, IntegrityError, NotFound
from storage.layout import INDEX, index_name, list_ids, object_id, pack_name
from storage.objects import Chunker, ChunkerParams, Codec, Index, IndexWriter, PackWriter, read_blob
from storage.versions.records import CONTENT_KIND, PINS, content_name, pin_name

RUN_PREFIX = "versions-"   # the run id of every pack the versioning engine writes
CHAIN = "versions"         # the chain its index objects name


@dataclass
class StoredContent:
    content_hash: str
    size: int
    chunks: list[str]
    new_chunks: int = 0
    new_bytes: int = 0      # bytes stored (compressed) for chunks not held before


def load_content(backend: Backend, content_hash: str, sealer: Sealer = PLAIN) -> StoredContent | None:
    try:
        doc = json.loads(sealer.open(CONTENT_KIND, backend.load(content_name(content_hash, sealer))))
    except NotFound:
        return None
    except (ValueError, IntegrityError) as exc:
        raise IntegrityError(f"The content record {content_hash[:12]} of the version history is damaged.") from exc
    return StoredContent(content_hash, int(doc["size"]), list(doc["chunks"]))


class ContentWriter:
    """Stores contents into one repository; keeps the index it dedups against up to date."""

    def __init__(self, backend: Backend, chunker: ChunkerParams, codec: Codec, load_index: Callable[[], Index]):
        self.backend = backend
        self.chunker = Chunker(chunker)
        self.codec = codec
        self.sealer = codec.sealer
        self._load_index = load_index
        self._index: Index | None = None
        self._known: dict[str, StoredContent] = {}  # content records are never deleted

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = self._load_index()
        return self._index

    def refresh(self) -> None:
        """Reload the index when other runs changed it: a prune that deleted packs rewrites the
        index objects that named them, so a changed listing is the sign (one listing of index/)."""
        if self._index is not None and set(self._index.index_names) != {index_name(i) for i in list_ids(self.backend,
                                                                                                         INDEX)}:
            self._index = None

    def store(self, data: bytes) -> StoredContent:
        content_hash = hashlib.sha256(data).hexdigest()
        known = self._known.get(content_hash) or load_content(self.backend, content_hash, self.sealer)
        if known is not None:
            self._known[content_hash] = known
            return known
        run = f"{RUN_PREFIX}{uuid.uuid4().hex}"
        writer = PackWriter(run, None, self.sealer)
        chunks: list[str] = []
        added: set[str] = set()
        pins: set[str] = set()
        for piece in (self.chunker.cut(data) if data else ()):
            cid = self.sealer.content_id(piece)
            chunks.append(cid)
            if cid in self.index:
                pins.update(self._pin_for(cid))
            elif cid not in added:
                added.add(cid)
                stored, flags = self.codec.encode(piece, cid)
                writer.add(cid, stored, len(piece), flags)
        result = StoredContent(content_hash, len(data), chunks, writer.count, len(writer))
        if writer.count:
            pack_id, packed, blobs = writer.finish()
            assert packed is not None
            self.backend.save(pack_name(pack_id), packed)
            index_writer = IndexWriter(self.backend, run, CHAIN, sealer=self.sealer)
            index_writer.add(pack_id, blobs)
            index_writer.flush()
            self.index.add_pack(pack_id, run, blobs)
            self.index.index_names.extend(index_writer.written)
        for pack in pins:
            self.backend.save(pin_name(pack), b"", exclusive=False)
        doc = {"size": len(data), "chunks": chunks}
        try:
            self.backend.save(content_name(content_hash, self.sealer),
                              self.sealer.seal(CONTENT_KIND, json.dumps(doc).encode()))
        except AlreadyExists:
            pass  # another writer described the same content (with its own packs): both are whole
        self._known[content_hash] = result
        return result

    def _pin_for(self, cid: str) -> set[str]:
        locs = self.index.locations(cid)
        if any(self.index.pack_run.get(loc.pack, "").startswith(RUN_PREFIX) for loc in locs):
            return set()
        return {locs[0].pack}

    def read(self, content: StoredContent, what: str) -> bytes:
        parts = []
        for cid in content.chunks:
            locs = self.index.locations(cid)
            if not locs:  # written by another process since the index was read
                self._index = None
                locs = self.index.locations(cid)
            if not locs:
                raise IntegrityError(f"A chunk of {what} ({cid[:12]}) is not in the index; "
                                     "run `backupflow repair index`, then `backupflow verify`.")
            loc = locs[0]
            stored = self.backend.load(pack_name(loc.pack), loc.offset, loc.length)
            parts.append(read_blob(self.codec, stored, loc, cid, what))
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != content.content_hash:
            raise IntegrityError(f"The content of {what} does not match its SHA-256; run `backupflow verify`.")
        return data


def is_version_run(run: str) -> bool:
    """Whether ``run`` (a pack's run id) wrote version content."""
    return run.startswith(RUN_PREFIX)


def version_packs(backend: Backend, index: Index) -> set[str]:
    """The packs version history needs: every pack written for versions, and every pinned pack."""
    own = {p for p, run in index.pack_run.items() if is_version_run(run)}
    return own | {object_id(o.name) for o in backend.list(PINS)}
