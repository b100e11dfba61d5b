"""Snapshot manifests: saved by content hash, resolved by id, unique prefix or 'latest'."""

from __future__ import annotations

import pytest

from storage.backend import MemoryBackend
from storage.errors import IntegrityError, InvalidInput, NotFound
from storage.snapshots import Snapshot, SnapshotStore
from storage.snapshots.manifest import snapshot_name
from storage.snapshots.names import dump_json, dump_tree


def _snap(n: int, type: str = "full") -> Snapshot:
    return Snapshot(type=type, run=f"run{n}", chain="c", time=f"2024-01-01T00:00:{n:02d}+00:00", host="h",
                    source="/src", stats={"files": n},
                    tree=[{"path": f"file{n}.txt", "type": "file", "mode": 0o644, "mtime_ns": n, "size": 0,
                           "chunks": [], "sha256": ""}])


def test_save_load_round_trip():
    store = SnapshotStore(MemoryBackend())
    snap = _snap(1)
    sid = store.save(snap)
    assert len(sid) == 64 and snap.id == sid
    again = SnapshotStore(store.backend).load(sid)  # a fresh store: no cache
    assert again.tree == snap.tree and again.stats == {"files": 1} and again.id == sid
    assert store.ids() == [sid]


def test_resolve_by_id_prefix_and_latest():
    store = SnapshotStore(MemoryBackend())
    ids = [store.save(_snap(n)) for n in range(3)]
    fresh = SnapshotStore(store.backend)
    assert fresh.resolve(ids[1]).id == ids[1]
    assert fresh.resolve(ids[1][:12]).id == ids[1]
    assert fresh.resolve(ids[1][:12].upper()).id == ids[1]
    assert fresh.resolve("latest").id == ids[2]  # newest by time
    assert [s.id for s in fresh.all()] == ids


def test_ambiguous_prefix_and_unknown_id_are_clear_errors():
    store = SnapshotStore(MemoryBackend())
    by_first: dict[str, str] = {}
    n = 0
    while True:  # at most 17 saves until two ids share a first hex digit
        sid = store.save(_snap(n))
        if sid[0] in by_first:
            break
        by_first[sid[0]] = sid
        n += 1
    with pytest.raises(InvalidInput, match="matches 2 snapshots"):
        store.resolve(sid[0])
    unknown = next(p for p in (f"{i:02x}" for i in range(256)) if not any(s.startswith(p) for s in store.ids()))
    with pytest.raises(NotFound, match="No snapshot matches"):
        store.resolve(unknown)
    with pytest.raises(InvalidInput, match="No snapshot given"):
        store.resolve("")


def test_latest_in_an_empty_repository():
    with pytest.raises(NotFound, match="no snapshots"):
        SnapshotStore(MemoryBackend()).resolve("latest")


def test_tampered_manifest_is_detected():
    store = SnapshotStore(MemoryBackend())
    sid = store.save(_snap(1))
    other = SnapshotStore(MemoryBackend())
    other_id = other.save(_snap(2))
    # put snapshot 2's bytes under snapshot 1's name
    store.backend.remove(snapshot_name(sid))
    store.backend.save(snapshot_name(sid), other.backend.load(snapshot_name(other_id)))
    with pytest.raises(IntegrityError, match=sid[:8]):
        SnapshotStore(store.backend).load(sid)


@pytest.mark.parametrize("name", ["plain.txt", "caf\u00e9 \u6587\u4ef6.txt", 'quote"back\\slash',
                                  "tab\tnew\nline\x01\x1f\x7f", "line\u2028sep", "bad\udcff"])
def test_a_tree_is_the_same_object_whichever_encoder_wrote_it(name):
    """Trees are written by orjson, older ones by the standard encoder: the same tree must give
    the same bytes, so an unchanged workspace keeps its tree object and an undecodable name
    stays a \\udcXX escape."""
    snap = _snap(1)
    snap.tree = [{"path": name, "type": "file", "mode": 0o644, "mtime_ns": 2**63 - 1, "size": 3,
                  "chunks": ["ab" * 32], "sha256": "cd" * 32, "changed_while_read": True},
                 {"path": name + "/x", "type": "symlink", "mode": 0o777, "mtime_ns": -5, "target": name}]
    store = SnapshotStore(MemoryBackend())
    store.save(snap)
    assert dump_tree(snap.tree) == dump_json(snap.tree)
    assert SnapshotStore(store.backend).load(snap.id).tree == snap.tree
