"""repair index (rebuild the index from pack headers) and repair snapshots (new snapshots
without what is lost), on real local repositories."""

from __future__ import annotations

import hashlib
import os

from storage import Repository
from storage.objects import pack_name
from tests.storage.test_damage_locality import flip_byte


def test_repair_index_after_a_flipped_index_object(two_sources, tmp_path):
    root, ids = two_sources
    damaged = sorted((root / "index").iterdir())[0]
    flip_byte(damaged)
    repo = Repository.open(str(root))
    out = repo.repair_index()
    assert out.index_removed == [f"index/{damaged.name}"] and out.packs_indexed >= 1
    # the same entries written again have the same name: the object is now whole
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == damaged.name
    repo = Repository.open(str(root))
    assert repo.index.damaged == {} and repo.index.recovered == []
    assert repo.verify(read_data=True).ok
    assert repo.prune().packs_deleted == 0                 # nothing was lost, nothing to delete


def test_repair_index_after_a_deleted_index_object(two_sources, tmp_path):
    root, ids = two_sources
    for obj in (root / "index").iterdir():
        obj.unlink()                                       # every index object gone
    report = Repository.open(str(root)).verify()
    assert not report.ok and any("repair index" in p for p in report.problems)
    assert report.damaged_files == {}                      # the packs hold everything
    out = Repository.open(str(root)).repair_index()
    assert out.packs_indexed == 3 and out.packs_unreadable == []
    repo = Repository.open(str(root))
    assert repo.verify(read_data=True).ok
    repo.restore(ids["one-inc"], str(tmp_path / "out"))
    assert (tmp_path / "out" / "new.txt").read_text() == "new\n"


def test_repair_snapshots_drops_lost_files_and_unreadable_snapshots(two_sources, tmp_path):
    root, ids = two_sources
    repo = Repository.open(str(root))
    one = repo.snapshot(ids["one"])
    # lose the pack that holds source one's files (its incremental needs them too)
    os.remove(root / pack_name(one.packs[0]))
    flip_byte(root / "snapshots" / ids["two"])             # and one manifest is unreadable
    plan = Repository.open(str(root)).plan_repair_snapshots()
    assert set(plan.rewrite) == {ids["one"], ids["one-inc"]}
    assert sorted(plan.rewrite[ids["one"]]) == ["one.txt", "sub/one.bin"]
    assert list(plan.remove) == [ids["two"]]
    assert plan.snapshots == sorted([ids["one"], ids["one-inc"], ids["two"]])

    done = Repository.open(str(root)).repair_snapshots(plan)
    assert sorted(done["removed"]) == plan.snapshots
    repo = Repository.open(str(root))
    snaps = repo.snapshots.all()
    assert len(snaps) == 2 and all("repaired" in s.tags for s in snaps) and repo.snapshots.damaged == {}
    new_inc = done["replaced"][ids["one-inc"]]
    assert [e["path"] for e in repo.snapshot(new_inc).tree if e["type"] == "file"] == ["new.txt"]
    assert repo.verify(read_data=True).damaged_snapshots == []
    assert repo.repair_index().missing_packs == [one.packs[0]]   # the index stops naming the lost pack
    assert Repository.open(str(root)).verify(read_data=True).ok  # what is left restores completely
    repo.restore(new_inc, str(tmp_path / "out"))
    assert (tmp_path / "out" / "new.txt").read_text() == "new\n"
