"""A backup whose chain is forgotten while it runs never commits into the broken chain: the
commit fails with ChainGone, and Repository.backup runs it again as a new full that reuses what
the failed run uploaded. Verify stays clean and every snapshot restores."""

from __future__ import annotations

import os

import pytest

from storage import Repository
from storage.errors import ChainGone
from tests.treegen import assert_same_tree, make_tree, mutate


@pytest.fixture()
def chain(tmp_path):
    url = str(tmp_path / "repo")
    repo = Repository.init(url)
    tree = make_tree(tmp_path / "src", seed=11)
    full = repo.backup(str(tree.root)).snapshot_id
    mutate(tree, seed=3)
    inc = repo.backup(str(tree.root)).snapshot_id
    return url, tree, full, inc


def _forget_chain(url: str, full: str) -> None:
    repo = Repository.open(url)
    repo.forget(repo.plan_forget([full], chain=True))


def test_an_incremental_whose_chain_was_forgotten_fails_at_commit_and_commits_nothing(chain, tmp_path):
    url, tree, full, _ = chain
    (tree.root / "during.bin").write_bytes(os.urandom(300_000))
    repo = Repository.open(url)
    plan = repo.plan_backup(str(tree.root))
    assert plan.type == "incremental"
    stored = repo.store(plan, repo.scan(plan))
    _forget_chain(url, full)  # forget <every snapshot of the chain> while the incremental runs
    with pytest.raises(ChainGone, match="chain was forgotten while it ran.*nothing was committed"):
        repo.commit(plan, stored)
    repo.abandon(plan)
    after = Repository.open(url)
    assert after.snapshots.ids() == []
    report = after.verify(read_data=True)
    assert report.ok, report.problems

    again = Repository.open(url).backup(str(tree.root))
    assert again.type == "full" and again.stats["bytes_added"] < again.stats["bytes_total"]  # reused its packs
    Repository.open(url).prune()
    final = Repository.open(url)
    assert final.verify(read_data=True).ok
    final.restore(again.snapshot_id, str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")


def test_repository_backup_becomes_a_new_full_when_its_chain_vanishes_mid_run(chain, tmp_path):
    url, tree, full, _ = chain
    (tree.root / "during.bin").write_bytes(os.urandom(200_000))
    forgotten = []

    def progress(files: int, _bytes: int) -> None:
        if not forgotten:
            forgotten.append(True)
            _forget_chain(url, full)

    result = Repository.open(url).backup(str(tree.root), progress=progress)
    assert forgotten and result.type == "full" and result.parent is None
    repo = Repository.open(url)
    assert [s.id for s in repo.snapshots.all()] == [result.snapshot_id]
    report = repo.verify(read_data=True)
    assert report.ok, report.problems
    repo.restore(result.snapshot_id, str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")
