"""Forget and prune: remaining snapshots keep everything they need, prune frees what forget
said, and prune never races a backup (lock handshake, live runs' packs kept)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from storage import Repository
from storage.errors import InvalidInput, Locked
from storage.repository import locks
from tests.treegen import assert_same_tree, fingerprint


def data_files(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (root / "data").rglob("*") if p.is_file()}


@pytest.fixture
def chain(tmp_path):
    """full -> incremental -> incremental of one folder; a copy of the folder at each step."""
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.bin").write_bytes(os.urandom(300_000))
    (src / "b.txt").write_bytes(b"same text\n" * 2000)
    ids, copies = [], []
    for step, name in enumerate(("c.bin", "d.bin")):
        if step:
            (src / name).write_bytes(os.urandom(200_000))
        ids.append(repo.backup(str(src)).snapshot_id)
        copies.append(shutil.copytree(src, tmp_path / f"at-{step}", symlinks=True))
    (src / "e.bin").write_bytes(os.urandom(250_000))
    ids.append(repo.backup(str(src)).snapshot_id)
    copies.append(shutil.copytree(src, tmp_path / "at-2", symlinks=True))
    return root, src, ids, copies


def assert_restores(root: Path, sid: str, expected: Path, where: Path) -> None:
    Repository.open(str(root)).restore(sid, str(where))
    assert_same_tree(fingerprint(expected, mtimes=False), fingerprint(where, mtimes=False))


def test_forgetting_the_newest_incremental_keeps_the_rest_and_prune_frees_what_it_said(chain, tmp_path):
    root, _, (full, inc1, inc2), copies = chain
    repo = Repository.open(str(root))
    plan = repo.plan_forget([inc2[:10]], prune=True)
    assert plan.snapshots == [inc2]
    assert not plan.last_snapshot and not plan.full_with_dependants and plan.remaining == 2
    own = repo.snapshot(inc2).packs
    before = data_files(root)
    assert plan.packs_freed == len(own) and plan.bytes_freed == sum(before[p] for p in own) > 250_000

    repo.forget(plan)
    assert sorted(Repository.open(str(root)).snapshots.ids()) == sorted([full, inc1])
    assert data_files(root) == before  # forget alone deletes no data

    report = Repository.open(str(root)).prune()
    after = data_files(root)
    assert report.bytes_freed == plan.bytes_freed == sum(before.values()) - sum(after.values())
    assert set(after) == set(before) - set(own)
    assert report.index_deleted == 1  # the forgotten run's only index object
    checked = Repository.open(str(root)).verify(read_data=True)
    assert checked.ok, checked.problems
    assert_restores(root, full, copies[0], tmp_path / "r-full")
    assert_restores(root, inc1, copies[1], tmp_path / "r-inc1")
    again = Repository.open(str(root)).prune()
    assert again.packs_deleted == 0 and data_files(root) == after


def test_a_full_with_dependants_is_refused_unless_they_are_named_or_chain_is_asked(chain):
    root, _, (full, inc1, inc2), _ = chain
    repo = Repository.open(str(root))
    with pytest.raises(InvalidInput) as exc:
        repo.plan_forget([full])
    msg = exc.value.message
    assert full[:8] in msg and inc1[:8] in msg and inc2[:8] in msg and "--chain" in msg
    with pytest.raises(InvalidInput) as exc:
        repo.plan_forget([inc1])  # inc2 was stored against inc1's packs
    assert inc2[:8] in exc.value.message and "--chain" in exc.value.message
    with pytest.raises(InvalidInput):
        repo.plan_forget([full, inc1])

    named = repo.plan_forget([full, inc2, inc1])
    whole = repo.plan_forget([full], chain=True)
    assert named.snapshots == whole.snapshots == [inc2, inc1, full]  # dependants go first
    assert whole.full_with_dependants and whole.last_snapshot and whole.remaining == 0
    assert whole.bytes_freed == sum(data_files(root).values())
    repo.forget(whole)
    assert Repository.open(str(root)).prune().bytes_freed == whole.bytes_freed
    assert data_files(root) == {} and list((root / "index").iterdir()) == []
    assert Repository.open(str(root)).verify().ok


def test_a_differential_depends_only_on_its_full(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(100_000))
    full = repo.backup(str(src), type="full").snapshot_id
    (src / "b.bin").write_bytes(os.urandom(100_000))
    diff = repo.backup(str(src), type="differential").snapshot_id
    (src / "c.bin").write_bytes(os.urandom(100_000))
    diff2 = repo.backup(str(src), type="differential").snapshot_id
    plan = repo.plan_forget([diff])  # the later differential never read diff's packs
    assert plan.snapshots == [diff] and not plan.last_snapshot
    repo.forget(plan)
    repo.prune()
    assert Repository.open(str(root)).verify(read_data=True).ok
    expected = fingerprint(src, mtimes=False)
    Repository.open(str(root)).restore(diff2, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out", mtimes=False) == expected
    assert full in Repository.open(str(root)).snapshots.ids()


def test_a_live_backup_makes_prune_refuse_and_keeps_everything(chain):
    root, src, (_, _, inc2), _ = chain
    repo = Repository.open(str(root))
    repo.forget(repo.plan_forget([inc2]))
    running = Repository.open(str(root))
    plan = running.plan_backup(str(src))  # its lock is live: this process is alive
    before = data_files(root)
    with pytest.raises(Locked, match="a backup is running.*try again when it finishes"):
        Repository.open(str(root)).prune()
    assert data_files(root) == before
    assert [p.name.split(".")[0] for p in (root / "locks").iterdir()] == [plan.run]  # prune's own lock is gone
    running.abandon(plan)
    assert Repository.open(str(root)).prune().packs_deleted > 0


def test_a_live_prune_makes_a_new_backup_refuse(chain, monkeypatch):
    root, src, _, _ = chain
    monkeypatch.setenv("BACKUPFLOW_LEASE_WAIT", "0")  # refuse at once instead of waiting for the prune
    backend = Repository.open(str(root)).backend
    locks.acquire(backend, "f" * 32, "prune")
    try:
        with pytest.raises(Locked, match="prune is running"):
            Repository.open(str(root)).backup(str(src))
        assert [p.name.split(".")[0] for p in (root / "locks").iterdir()] == ["f" * 32]  # the backup took its lock back
    finally:
        locks.release(backend, "f" * 32)
    assert Repository.open(str(root)).backup(str(src)).type == "incremental"


def test_unclaimed_packs_of_a_live_run_are_kept_and_a_dead_runs_are_deleted(chain, tmp_path):
    root, src, _, _ = chain
    (src / "new.bin").write_bytes(os.urandom(400_000))
    live = Repository.open(str(root))
    plan = live.plan_backup(str(src))
    stored = live.store(plan, live.scan(plan))  # uploaded and indexed, not yet committed
    assert stored.packs
    seen = Repository.open(str(root)).prune(dry_run=True)
    assert seen.dry_run and seen.packs_deleted == 0 and seen.packs_kept_live == len(stored.packs)
    assert not set(stored.packs) & set(seen.packs)
    with pytest.raises(Locked):
        Repository.open(str(root)).prune()
    snap = live.commit(plan, stored)
    assert_restores(root, snap.id, src, tmp_path / "r-live")

    (src / "gone.bin").write_bytes(os.urandom(300_000))
    dead = Repository.open(str(root))
    plan = dead.plan_backup(str(src))
    orphans = dead.store(plan, dead.scan(plan)).packs
    dead.abandon(plan)  # killed before commit: its packs are no snapshot's
    sizes = data_files(root)
    report = Repository.open(str(root)).prune()
    assert sorted(report.packs) == sorted(orphans)
    assert report.bytes_freed == sum(sizes[p] for p in orphans)
    assert Repository.open(str(root)).verify(read_data=True).ok


def test_prune_rewrites_an_index_object_that_names_kept_and_deleted_packs(tmp_path):
    """A killed run's index object names packs the next backup adopts and packs it does not."""
    root = tmp_path / "repo"
    repo = Repository.init(str(root), pack_size_mib=1)
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.bin").write_bytes(os.urandom(300_000))
    (src / "drop.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    plan = repo.plan_backup(str(src))
    killed = repo.store(plan, repo.scan(plan)).packs
    repo.abandon(plan)
    (src / "drop.bin").unlink()
    snap = Repository.open(str(root)).backup(str(src))
    adopted = set(Repository.open(str(root)).snapshot(snap.snapshot_id).packs)
    assert adopted and adopted < set(killed)
    index_before = {p.name for p in (root / "index").iterdir()}

    report = Repository.open(str(root)).prune()
    assert set(report.packs) == set(killed) - adopted
    assert report.index_rewritten == 1 and report.index_deleted == 0
    index_after = {p.name for p in (root / "index").iterdir()}
    assert len(index_after) == len(index_before) and index_after != index_before
    fresh = Repository.open(str(root))
    assert set(fresh.index.pack_run) == adopted
    assert fresh.verify(read_data=True).ok
    assert_restores(root, snap.snapshot_id, src, tmp_path / "out")
