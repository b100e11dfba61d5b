"""A retention policy planned on a real repository: chains are kept whole, the plan's forget is
one that `forget` accepts, and the bytes it announces are what prune then frees."""

from __future__ import annotations

import os

from storage import Repository, RetentionPolicy
from storage.repository import ForgetPlan


def test_a_cleanup_plan_keeps_chains_whole_and_frees_what_it_announces(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    one, two = tmp_path / "one", tmp_path / "two"
    ids = []
    for src in (one, two):
        src.mkdir()
        (src / "a.bin").write_bytes(os.urandom(150_000))
    ids.append(repo.backup(str(one)).snapshot_id)                     # full of one
    (one / "b.bin").write_bytes(os.urandom(100_000))
    ids.append(repo.backup(str(one), type="differential").snapshot_id)
    (one / "c.bin").write_bytes(os.urandom(100_000))
    ids.append(repo.backup(str(one), type="differential").snapshot_id)
    two_id = repo.backup(str(two), tags=["keep"]).snapshot_id

    plan = repo.plan_cleanup(RetentionPolicy(last=1))
    rows = {r["id"]: r for r in plan.decisions}
    assert rows[ids[2]]["reasons"] == ["--keep-last"] and rows[ids[0]]["reasons"] == [f"needed by {ids[2][:8]}"]
    assert rows[ids[1]]["keep"] is False and rows[two_id]["reasons"] == ["--keep-last"]
    assert plan.remove == [ids[1]] and not plan.last_snapshot and plan.bytes_freed > 100_000

    repo.forget(ForgetPlan(**plan.forget))
    assert repo.prune().bytes_freed == plan.bytes_freed
    assert repo.verify(read_data=True).ok

    # keeping only tagged snapshots would leave source one with nothing: the plan says so
    plan = repo.plan_cleanup(RetentionPolicy(tags=["keep"]))
    assert plan.last_snapshot and set(plan.remove) == {ids[0], ids[2]}
    assert plan.remove.index(ids[2]) < plan.remove.index(ids[0])  # dependants go first
    assert repo.plan_cleanup(RetentionPolicy(tags=["keep"], minimum=1)).remove == []


def test_a_damaged_manifest_is_left_alone_and_named(tmp_path):
    root, src = tmp_path / "repo", tmp_path / "src"
    repo = Repository.init(str(root))
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    first = repo.backup(str(src), type="full").snapshot_id
    second = repo.backup(str(src), type="full").snapshot_id
    manifest = next(p for p in (root / "snapshots").rglob("*") if p.is_file() and p.name.startswith(first))
    manifest.write_bytes(b"not a manifest")
    plan = Repository.open(str(root)).plan_cleanup(RetentionPolicy(last=1))
    assert [r["id"] for r in plan.decisions] == [second] and plan.remove == []
    assert list(plan.damaged) == [first] and "damaged" in plan.damaged[first]
