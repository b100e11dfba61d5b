"""Two backups of different sources into one repository at the same time both succeed and both restore."""

from __future__ import annotations

import threading
import uuid

import pytest

from storage import Repository
from tests.flows.cli_process import cli_env, run, start
from tests.suite_password import open_repository
from tests.treegen import assert_same_tree, make_tree


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_two_threads_back_up_at_once(tmp_path, kind):
    url = str(tmp_path / "repo") if kind == "local" else f"memory://{uuid.uuid4().hex}"
    Repository.init(url)
    trees = [make_tree(tmp_path / f"src{i}", seed=100 + i) for i in range(2)]
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def backup(i: int) -> None:
        repo = Repository.open(url)  # each writer has its own handle, as separate hosts would
        barrier.wait()
        try:
            results[i] = repo.backup(str(trees[i].root))
        except BaseException as exc:  # reported below, with the other thread's outcome
            results[i] = exc

    threads = [threading.Thread(target=backup, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(not isinstance(r, BaseException) for r in results.values()), results
    assert len(results) == 2

    repo = Repository.open(url)
    snaps = repo.snapshots.all()
    assert {s.id for s in snaps} == {results[0].snapshot_id, results[1].snapshot_id}
    assert {s.source for s in snaps} == {str(t.root) for t in trees}
    assert repo.verify(read_data=True).ok
    for i, tree in enumerate(trees):
        repo.restore(results[i].snapshot_id, str(tmp_path / f"out{i}"))
        assert_same_tree(tree.root, tmp_path / f"out{i}")


def test_two_cli_processes_back_up_at_once(prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    repo = str(tmp_path / "repo")
    run(["init", "-r", repo], env, tmp_path).ok()
    trees = [make_tree(tmp_path / f"src{i}", seed=200 + i) for i in range(2)]
    procs = [start(["backup", str(t.root), "-r", repo, "--json"], env, tmp_path) for t in trees]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    repo_obj = open_repository(repo)  # made by the CLI: encrypted with the suite password
    assert len(repo_obj.snapshots.all()) == 2
    assert repo_obj.verify(read_data=True).ok
    for i, tree in enumerate(trees):
        ref = next(s.id for s in repo_obj.snapshots.all() if s.source == str(tree.root))
        repo_obj.restore(ref, str(tmp_path / f"out{i}"))
        assert_same_tree(tree.root, tmp_path / f"out{i}")


def test_two_first_backups_into_an_empty_location_share_one_repository(tmp_path):
    """Both create the repository (as `backupflow backup` does in an empty location): one config wins
    and both backups land in it. Repeated, because the window between look and write is short."""
    src = make_tree(tmp_path / "src", seed=300)
    for n in range(8):
        url = str(tmp_path / f"repo{n}")
        barrier = threading.Barrier(2)
        results: list[object] = []

        def backup(url: str = url, barrier: threading.Barrier = barrier, results: list[object] = results) -> None:
            barrier.wait()
            try:
                repo = Repository.open(url, create=True)
                results.append((repo.config.id, repo.backup(str(src.root)).snapshot_id))
            except BaseException as exc:
                results.append(exc)

        threads = [threading.Thread(target=backup) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert len({cfg for cfg, _ in results}) == 1, f"two different repository configs were used: {results}"
        assert len(Repository.open(url).snapshots.all()) == 2
