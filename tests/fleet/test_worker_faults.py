"""A worker's machine dies (SIGKILL of the worker and everything under it) in the middle of a
backup, and in the middle of a prune, on the fleet set-up (tests/fleet/fleet.py).

Mid-backup: the run becomes Crashed through backupflow's automation (heartbeats stop; the one
`backupflow notify setup` creates, here with a short window), the
repository stays consistent, and the next run completes and adopts what the killed one
uploaded. Mid-prune (on the S3 protocol server, where deleting dozens of packs one by one takes
long enough to land in): nothing a snapshot needs is deleted, and the next prune finishes it.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

import flows
from storage import Repository
from storage.layout import list_packs
from tests.fleet.fleet import Fleet
from tasks.automations import ensure, unresponsive_runs
from tests.flows.cli_process import cli_env
from tests.treegen import assert_same_tree
from tests.suite_password import open_repository

pytestmark = [pytest.mark.postgres, pytest.mark.cloud]

HEARTBEAT = 30           # Prefect's smallest heartbeat interval
CRASH_AFTER = timedelta(seconds=75)  # two and a half missed heartbeats


@pytest.fixture(scope="module")
def fleet(postgres_prefect_server, s3_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet-faults")
    # A prune killed on its worker holds the repository's Prefect slot until the slot's lease
    # runs out (BACKUPFLOW_SLOT_LEASE, here Prefect's minimum); the next prune waits that long.
    env = cli_env(postgres_prefect_server, work, BACKUPFLOW_LEASE_WAIT="240", BACKUPFLOW_SLOT_LEASE="60",
                  PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT))
    fleet = Fleet(postgres_prefect_server.api_url, env, work).create()
    crash = unresponsive_runs([getattr(flows, name).name for name in flows.__all__], CRASH_AFTER)
    with temporary_settings({PREFECT_API_URL: postgres_prefect_server.api_url}):
        assert ensure([crash]) == [(crash.name, "created")]  # what `backupflow notify setup` creates
    fleet.start_worker("host-a")
    fleet.start_worker("host-b")
    try:
        yield fleet
    finally:
        fleet.stop()
        client = fleet.client()
        for automation in client.read_automations_by_name(crash.name):
            client.delete_automation(automation.id)


def _random_tree(root: Path, files: int, size: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"part-{i:03d}.bin").write_bytes(os.urandom(size))
    return root


def _wait_until(what: str, check, fleet: Fleet, timeout: float = 180, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:g} s\n{fleet.logs()}")


def _host_of(fleet: Fleet, run_id: UUID) -> str:
    return _wait_until("the run's process appearing on a worker", lambda: fleet.worker_of(run_id), fleet, every=0.5)


def test_a_worker_killed_mid_backup_leaves_a_crashed_run_and_the_next_run_adopts_its_packs(fleet, tmp_path):
    source = _random_tree(tmp_path / "ws", files=24, size=4 << 20)  # 96 MiB that does not compress
    url = str(tmp_path / "repo")
    backend = Repository.init(url).backend
    # A bandwidth cap keeps the upload going for a while: the kill lands in it, not after it.
    params = {"source": str(source), "repo": url, "options": {"upload_limit": "8MiB/s"}}
    killed = fleet.submit("backup", params, name="backup to be killed")
    host = _host_of(fleet, killed)
    _wait_until("three packs uploaded", lambda: len(list_packs(backend)) >= 3, fleet)
    fleet.kill_host(host)
    fleet.start_worker(host)  # the machine comes back; its worker takes runs again

    uploaded = list_packs(backend)
    assert open_repository(url).snapshots.all() == [], "a killed backup must leave no snapshot"
    crashed = fleet.wait([killed], timeout=240, until={StateType.CRASHED, StateType.COMPLETED,
                                                         StateType.FAILED})[killed]
    assert crashed.state_type == StateType.CRASHED, (crashed.state_name, crashed.state.message if crashed.state else "")
    assert "No heartbeat" in (crashed.state.message or "")
    assert open_repository(url).verify(read_data=True).ok

    again = fleet.submit("backup", {"source": str(source), "repo": url}, name="backup after the kill")
    done = fleet.wait([again], timeout=300)[again]
    assert done.state_type == StateType.COMPLETED, (done.state_name, done.state.message if done.state else "")
    repo = open_repository(url)
    (snap,) = repo.snapshots.all()
    adopted = set(uploaded) & set(snap.packs)
    assert adopted, f"none of the {len(uploaded)} packs the killed run uploaded was reused"
    total = sum(p.stat().st_size for p in source.iterdir())
    assert snap.stats["bytes_added"] < total, snap.stats
    assert repo.verify(read_data=True).ok
    repo.restore(snap.id, str(tmp_path / "out"))
    assert_same_tree(source, tmp_path / "out")


def test_a_worker_killed_mid_prune_deletes_nothing_a_snapshot_needs(fleet, s3_server, tmp_path):
    dest = s3_server.new_destination()
    repo = Repository.init(dest.url, pack_size_mib=1)
    old = _random_tree(tmp_path / "old", files=48, size=1 << 20)   # ~48 one-MiB packs, garbage soon
    kept = _random_tree(tmp_path / "kept", files=4, size=1 << 20)
    doomed = repo.backup(str(old), type="full").snapshot_id
    keep = repo.backup(str(kept), type="full").snapshot_id
    repo.forget(repo.plan_forget([doomed]))
    before = set(list_packs(repo.backend))

    pruning = fleet.submit("prune", {"repo": dest.url}, name="prune to be killed")
    host = _host_of(fleet, pruning)
    _wait_until("the prune deleting packs", lambda: len(list_packs(repo.backend)) < len(before), fleet,
                every=0.02)
    fleet.kill_host(host)
    fleet.start_worker(host)
    left = set(list_packs(repo.backend))
    print(f"prune killed with {len(before) - len(left)} of the garbage packs deleted, {len(left)} left")

    repo = open_repository(dest.url)
    assert [s.id for s in repo.snapshots.all()] == [keep]
    assert repo.verify(read_data=True).ok
    repo.restore(keep, str(tmp_path / "out"))
    assert_same_tree(kept, tmp_path / "out")
    again = fleet.submit("prune", {"repo": dest.url}, name="prune after the kill")
    done = fleet.wait([again], timeout=400)[again]
    assert done.state_type == StateType.COMPLETED, (done.state_name, done.state.message if done.state else "")
    killed = fleet.wait([pruning], timeout=240)[pruning]
    assert killed.state_type == StateType.CRASHED, killed.state_name
    repo = open_repository(dest.url)
    assert set(list_packs(repo.backend)) == set(repo.snapshots.load(keep).packs)  # the garbage is gone
    assert repo.verify(read_data=True).ok
