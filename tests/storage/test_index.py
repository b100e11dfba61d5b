"""The index: written in batches as packs land, reloaded as the union of its objects."""

from __future__ import annotations

import hashlib

import pytest

from storage.backend import MemoryBackend
from storage.errors import NotFound
from storage.objects import BlobLocation, Index, IndexWriter


def _blobs(pack_no: int, n: int = 3) -> list[list]:
    return [[hashlib.sha256(b"%d-%d" % (pack_no, i)).hexdigest(), i * 100, 100, 250, 1] for i in range(n)]


def _pack_id(n: int) -> str:
    return hashlib.sha256(b"pack %d" % n).hexdigest()


def test_written_in_batches_and_reloaded():
    backend = MemoryBackend()
    writer = IndexWriter(backend, run="run-1", chain="chain-1", batch=2)
    for n in range(5):
        writer.add(_pack_id(n), _blobs(n))
    # two full batches went out on their own, before the run finished
    assert len(list(backend.list("index/"))) == 2
    writer.flush()
    names = [o.name for o in backend.list("index/")]
    assert len(names) == 3 and sorted(writer.written) == names
    writer.flush()  # nothing pending: no empty index object
    assert len(list(backend.list("index/"))) == 3

    index = Index.load(backend)
    assert len(index) == 15
    assert set(index.pack_run) == {_pack_id(n) for n in range(5)}
    assert set(index.pack_run.values()) == {"run-1"}
    cid, off, length, raw, flags = _blobs(3)[2]
    loc = lookup(index, cid)
    assert (loc.pack, loc.offset, loc.length, loc.raw_length, loc.flags) == (_pack_id(3), off, length, raw, flags)
    assert index.pack_size(_pack_id(3)) == 300
    assert index.chunks_in_packs({_pack_id(0)}) == {b[0] for b in _blobs(0)}


def lookup(index: Index, cid: str, prefer_packs: set[str] | None = None) -> BlobLocation:
    """A stored copy of ``cid``, one in ``prefer_packs`` if any (as restore's ChunkLocator picks)."""
    locs = index.locations(cid)
    if not locs:
        raise NotFound(f"chunk {cid[:12]} is not in the index")
    return next((loc for loc in locs if prefer_packs and loc.pack in prefer_packs), locs[0])


def test_a_chunk_in_two_packs_prefers_the_asked_for_pack():
    backend = MemoryBackend()
    shared = _blobs(9, 1)[0]
    for run, pack in (("a", _pack_id(1)), ("b", _pack_id(2))):
        w = IndexWriter(backend, run, run)
        w.add(pack, [shared])
        w.flush()
    index = Index.load(backend)
    assert {loc.pack for loc in index.locations(shared[0])} == {_pack_id(1), _pack_id(2)}
    assert lookup(index, shared[0], {_pack_id(2)}).pack == _pack_id(2)
    assert lookup(index, shared[0], {_pack_id(1)}).pack == _pack_id(1)
    with pytest.raises(NotFound):
        lookup(index, "0" * 64)


def test_tampered_index_object_is_skipped_and_named():
    backend = MemoryBackend()
    w = IndexWriter(backend, "r", "c")
    w.add(_pack_id(1), _blobs(1))
    w.flush()
    name = w.written[0]
    backend.remove(name)
    backend.save(name, b"garbage")
    index = Index.load(backend)          # damage stays local: the load goes on
    assert list(index.damaged) == [name]
    assert "does not match its hash" in index.damaged[name]
    assert name not in index.index_names
