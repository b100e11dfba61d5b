"""The backup flow, when the chain its incremental reads from is forgotten while it runs: it
does not commit into the forgotten chain but runs again as a new full, and everything verifies
and restores (issue: an incremental committed into a forgotten chain made every later verify
exit 6)."""

from __future__ import annotations

import os

import pytest

from storage.repository import repository as repository_mod
from tests.treegen import assert_same_tree, make_tree
from tests.suite_password import open_repository


@pytest.fixture
def flow_env(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    monkeypatch.chdir(tmp_path)
    return prefect_server


def test_the_flow_becomes_a_new_full_when_its_chain_is_forgotten_before_commit(flow_env, tmp_path, monkeypatch):
    from flows import backup_flow

    tree = make_tree(tmp_path / "src", seed=41)
    url = str(tmp_path / "repo")
    full = backup_flow(source=str(tree.root), repo=url)["snapshot_id"]
    (tree.root / "during.bin").write_bytes(os.urandom(300_000))

    # The forget lands at the worst moment: the incremental has stored its data and is about
    # to commit. (Where a forget lands in time is what the hook fixes; the forget is real.)
    commit = repository_mod.Repository.commit
    forgotten = []

    def forget_then_commit(self, plan, stored):
        if not forgotten:
            other = open_repository(url)
            forgotten.extend(other.forget(other.plan_forget([full], chain=True)).forgotten)
        return commit(self, plan, stored)

    monkeypatch.setattr(repository_mod.Repository, "commit", forget_then_commit)
    summary = backup_flow(source=str(tree.root), repo=url)
    assert forgotten == [full]
    assert summary["type"] == "full" and summary["parent"] is None
    repo = open_repository(url)
    assert [s.id for s in repo.snapshots.all()] == [summary["snapshot_id"]]
    report = repo.verify(read_data=True)
    assert report.ok, report.problems
    repo.restore(summary["snapshot_id"], str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")
