"""One damaged object must not take the repository down (issue 9 part 4): commands skip and
name a damaged snapshot or index object and go on with the rest; prune stays safe."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from storage import Repository
from storage.errors import IntegrityError
from storage.objects import Codec
from storage.snapshots import Snapshot
from storage.snapshots.manifest import snapshot_name


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        os.chmod(path, 0o644)
    path.write_bytes(data)


def flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    _write(path, bytes(data))


def crafted_manifest(root: Path, doc) -> str:
    """A manifest whose name is the hash of its content, but whose content is not usable."""
    data = json.dumps(doc).encode()
    sid = hashlib.sha256(data).hexdigest()
    _write(root / snapshot_name(sid), Codec.pack_doc(data))
    return sid


def test_flipped_manifest_is_skipped_named_and_forgettable(two_sources, tmp_path):
    root, ids = two_sources
    flip_byte(root / snapshot_name(ids["two"]))
    repo = Repository.open(str(root))
    listed = [s.id for s in repo.snapshots.all()]
    assert listed == [ids["one"], ids["one-inc"]]
    assert list(repo.snapshots.damaged) == [ids["two"]]
    assert ids["two"][:8] in repo.snapshots.damaged[ids["two"]]
    stats = repo.stats()
    assert stats.snapshots == 2 and ids["two"] in stats.damaged_snapshots

    # the intact snapshots still restore, a full backup still works
    repo.restore(ids["one-inc"], str(tmp_path / "out"))
    assert (tmp_path / "out" / "new.txt").read_text() == "new\n"
    full = repo.backup(str(tmp_path / "one"), type="full")
    assert full.type == "full" and full.warnings == []     # a full needs no parent: nothing to say
    result = Repository.open(str(root)).backup(str(tmp_path / "one"))
    assert any(ids["two"][:8] in w for w in result.warnings)   # an incremental names what it left out

    # prune refuses (it cannot tell what the damaged manifest needs), naming it, deleting nothing
    packs_before = sorted(p.name for p in (root / "data").rglob("*") if p.is_file())
    with pytest.raises(IntegrityError, match=ids["two"][:8]) as err:
        Repository.open(str(root)).prune()
    assert "deleted nothing" in err.value.message
    assert sorted(p.name for p in (root / "data").rglob("*") if p.is_file()) == packs_before

    # the damaged id can be forgotten; then prune goes ahead
    repo = Repository.open(str(root))
    plan = repo.plan_forget([ids["two"][:10]])
    assert plan.snapshots == [ids["two"]] and plan.damaged == [ids["two"]]
    assert repo.forget(plan).forgotten == [ids["two"]]
    report = Repository.open(str(root)).prune()
    assert report.packs_deleted == 1          # source two's only pack
    assert Repository.open(str(root)).verify(read_data=True).ok


@pytest.mark.parametrize("doc", [["a", "list"], {"time": 5}], ids=["json-list", "time-is-a-number"])
def test_malformed_manifest_never_crashes_a_command(two_sources, tmp_path, doc):
    root, ids = two_sources
    if isinstance(doc, dict):
        good = Repository.open(str(root)).snapshot(ids["two"])
        doc = {**json.loads(good.to_bytes()), **doc}
    bad = crafted_manifest(root, doc)
    repo = Repository.open(str(root))
    assert {s.id for s in repo.snapshots.all()} == {ids["one"], ids["two"], ids["one-inc"]}
    assert bad in repo.snapshots.damaged
    with pytest.raises(IntegrityError, match=bad[:8]):
        repo.snapshot(bad)
    assert repo.snapshot("latest").id in ids.values()
    report = repo.verify()
    assert not report.ok and bad in report.damaged_snapshots
    assert any(bad[:8] in p for p in report.problems)


def test_stray_file_in_snapshots_is_ignored_by_commands_and_named_by_verify(two_sources, tmp_path):
    root, ids = two_sources
    _write(root / "snapshots" / "notes.txt", b"hello")
    repo = Repository.open(str(root))
    assert len(repo.snapshots.all()) == 3 and repo.snapshots.damaged == {}
    assert repo.prune(dry_run=True).packs_deleted == 0
    report = repo.verify()
    assert not report.ok and any("snapshots/notes.txt" in p for p in report.problems)


def test_damaged_index_object_stays_local(two_sources, tmp_path):
    root, ids = two_sources
    index_obj = sorted((root / "index").iterdir())[0]
    flip_byte(index_obj)
    repo = Repository.open(str(root))
    assert list(repo.index.damaged) == [f"index/{index_obj.name}"]
    assert repo.index.recovered                        # its packs were read from their headers
    for sid in ids.values():                           # every snapshot still restores
        repo.restore(sid, str(tmp_path / f"out-{sid[:8]}"))
    report = Repository.open(str(root)).verify(read_data=True)
    assert not report.ok and f"index/{index_obj.name}" in report.damaged_objects
    assert report.damaged_files == {}                  # nothing is lost: only the index object is damaged
    with pytest.raises(IntegrityError, match="repair index"):
        Repository.open(str(root)).prune()


def _config_damage_message(root: Path) -> str:
    with pytest.raises(IntegrityError) as err:
        Repository.open(str(root))
    return err.value.message


def test_config_checksum_catches_a_flipped_seed_bit(two_sources):
    root, _ = two_sources
    doc = json.loads((root / "config").read_bytes())
    assert len(doc["checksum"]) == 64
    doc["chunker"]["seed"] ^= 1 << 20                       # one bit of the chunker secret
    _write(root / "config", json.dumps(doc, indent=1).encode())
    assert "repository config" in _config_damage_message(root) and "checksum" in _config_damage_message(root)


def test_config_without_checksum_still_opens(two_sources):
    root, ids = two_sources
    doc = json.loads((root / "config").read_bytes())
    del doc["checksum"]                                     # as written before the checksum existed
    _write(root / "config", json.dumps(doc, indent=1).encode())
    assert Repository.open(str(root)).snapshot(ids["one"]).id == ids["one"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_other_config_damage_says_the_config_is_damaged(two_sources, damage):
    root, _ = two_sources
    path = root / "config"
    if damage == "truncate":
        _write(path, path.read_bytes()[:40])
    elif damage == "flip":
        flip_byte(path, 5)                                  # inside "format": the JSON no longer says whose it is
    else:
        path.unlink()
    message = _config_damage_message(root)
    assert "repository config" in message and ("damaged" in message or "missing" in message)
    assert "not a backupflow repository" not in message


def test_someone_elses_config_file_is_not_called_damage(tmp_path):
    (tmp_path / "config").write_text("[core]\nbare = false\n")
    with pytest.raises(Exception) as err:
        Repository.open(str(tmp_path))
    assert "not a backupflow repository" in str(err.value) and not isinstance(err.value, IntegrityError)


def test_damaged_tree_of_the_latest_snapshot_falls_back_to_reading_everything(two_sources, tmp_path):
    root, ids = two_sources
    repo = Repository.open(str(root))
    tree_id = repo.snapshots.header(ids["one-inc"]).tree_id
    flip_byte(root / "trees" / tree_id)
    result = Repository.open(str(root)).backup(str(tmp_path / "one"))
    assert result.type == "incremental"
    assert any(tree_id[:8] in w and "read again" in w for w in result.warnings)
    assert result.stats["files_read"] == 3                 # nothing could be skipped as unchanged
    out = tmp_path / "out"
    Repository.open(str(root)).restore(result.snapshot_id, str(out))
    assert (out / "new.txt").read_text() == "new\n"
    # the workspace was unchanged, so the new snapshot wrote the same tree: the damaged copy was
    # replaced by a good one, and the older snapshot is whole again
    assert Repository.open(str(root)).verify(read_data=True).ok


def test_damaged_tree_is_named_with_its_snapshot(two_sources):
    root, ids = two_sources
    tree_id = Repository.open(str(root)).snapshots.header(ids["two"]).tree_id
    (root / "trees" / tree_id).unlink()
    report = Repository.open(str(root)).verify()
    assert f"trees/{tree_id}" in report.damaged_objects and report.damaged_snapshots == [ids["two"]]
    assert any(ids["two"][:8] in p and "missing" in p for p in report.problems)


def test_verify_names_a_tree_entry_whose_chunks_are_not_chunk_ids(two_sources):
    root, ids = two_sources
    repo = Repository.open(str(root))
    snap = repo.snapshot(ids["two"])
    tree = [dict(e, chunks=5) if e["path"] == "two.txt" else e for e in snap.tree]
    bad = repo.snapshots.save(Snapshot(**{**{f: getattr(snap, f) for f in ("type", "run", "chain", "time", "host",
                                                                              "source", "packs")}, "tree": tree}))
    report = Repository.open(str(root)).verify()
    assert report.damaged_files[bad] == ["two.txt"]
