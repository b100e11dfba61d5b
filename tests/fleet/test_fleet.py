"""Many sources into one repository from a fleet: a Prefect server on PostgreSQL, a process
work pool, two workers, twelve backups of different workspaces started together into one
repository on local disk and twelve into one on the S3 protocol server, with a prune and a
verify of each started while they run."""

from __future__ import annotations

import time
from uuid import UUID

import pytest
from prefect.client.schemas.objects import StateType

from tests.fleet.fleet import Fleet
from tests.flows.cli_process import cli_env, run
from tests.treegen import assert_same_tree, make_tree

pytestmark = [pytest.mark.postgres, pytest.mark.cloud]

SOURCES = 12


@pytest.fixture(scope="module")
def fleet(postgres_prefect_server, s3_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    # A reader or backup meeting a prune's lease waits for it rather than standing down at once.
    env = cli_env(postgres_prefect_server, work, BACKUPFLOW_LEASE_WAIT="120")
    fleet = Fleet(postgres_prefect_server.api_url, env, work).create()
    fleet.start_worker("host-a")
    fleet.start_worker("host-b")
    try:
        yield fleet
    finally:
        fleet.stop()


def _started(fleet: Fleet, run_ids: list[UUID], count: int, timeout: float = 120) -> None:
    """Wait until ``count`` of the runs are running or done: the middle of the wave."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [r.state_type for r in fleet.read_many(run_ids).values()]
        if sum(s in (StateType.RUNNING, StateType.COMPLETED) for s in states) >= count:
            return
        time.sleep(0.5)
    raise AssertionError("the backups never started:\n" + fleet.logs())


def test_twelve_sources_per_repository_back_up_at_once_with_prune_and_verify_between(fleet, s3_server, tmp_path):
    trees = [make_tree(tmp_path / f"ws{i:02d}", seed=700 + i) for i in range(SOURCES)]
    dest = s3_server.new_destination()
    repos = {"local": str(tmp_path / "repo"), "s3": dest.url}
    for url in repos.values():
        run(["init", "--repo", url], fleet.env, tmp_path).ok()

    specs = [("backup", {"source": str(tree.root), "repo": url}, f"backup ws{i:02d} {kind}")
             for i, tree in enumerate(trees) for kind, url in repos.items()]
    backups = fleet.submit_many(specs)
    _started(fleet, backups, count=4)
    middle = fleet.submit_many([spec for kind, url in repos.items() for spec in (
        ("prune", {"repo": url, "wait_minutes": 15}, f"prune {kind}"), ("verify", {"repo": url}, f"verify {kind}"))])

    done = fleet.wait([*backups, *middle], timeout=600)
    failed = {r.name: f"{r.state_name}: {r.state.message if r.state else ''}" for r in done.values()
              if r.state_type != StateType.COMPLETED}
    assert not failed, f"runs that did not complete: {failed}\n{fleet.logs()}"

    for kind, url in repos.items():
        repo = fleet.open_repo(url)
        snaps = repo.snapshots.all()
        assert sorted(s.source for s in snaps) == sorted(str(t.root) for t in trees), kind
        report = repo.verify(read_data=True)
        assert report.ok, (kind, report)
        for snap in snaps:
            i = [str(t.root) for t in trees].index(snap.source)
            out = tmp_path / f"out-{kind}-{i:02d}"
            repo.restore(snap.id, str(out))
            assert_same_tree(trees[i].root, out)
