"""Prune holds its repository's exclusive Prefect concurrency slot, so the UI shows who waits
for whom; a second prune waits for the slot, then stands down with Locked, deleting nothing."""

from __future__ import annotations

import os
import threading

import pytest
from prefect import get_client
from prefect.concurrency.sync import concurrency

from storage import Repository
from storage.errors import Locked
from storage.repository import locks
from tasks.coordination import slot_name

from tests.suite_password import open_repository


@pytest.fixture
def repo_with_garbage(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "repo")
    repo = Repository.init(url)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(200_000))
    first = repo.backup(str(src), type="full").snapshot_id
    repo.backup(str(src), type="full")
    repo.forget(repo.plan_forget([first]))  # its pack is garbage now
    return url, repo.config.id


def test_prune_holds_the_repository_slot_and_a_second_prune_waits_then_stands_down(repo_with_garbage, monkeypatch):
    from flows import prune_flow

    url, repo_id = repo_with_garbage
    name = slot_name(repo_id)
    monkeypatch.setenv("BACKUPFLOW_LEASE_WAIT", "1")
    before = sorted(o.name for o in open_repository(url).backend.list("data/"))
    prune_flow(repo=url, dry_run=True)  # a dry run needs no slot
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, strict=True):  # another prune of this repository, elsewhere
        with pytest.raises(Locked, match=f"holds the Prefect concurrency limit {name}"):
            prune_flow(repo=url)
    assert sorted(o.name for o in open_repository(url).backend.list("data/")) == before
    report = prune_flow(repo=url)
    assert report["packs_deleted"] == 1
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 1 and limit.active_slots == 0


def test_a_prune_told_to_wait_waits_for_the_running_backup_then_prunes(repo_with_garbage):
    from flows import prune_flow

    url, _ = repo_with_garbage
    backend = open_repository(url).backend
    locks.acquire(backend, "running-backup", "backup", what="backup")  # a worker's backup, running
    with pytest.raises(Locked, match="Cannot prune"):
        prune_flow(repo=url)  # without waiting it refuses at once, as the CLI does
    timer = threading.Timer(3.0, locks.release, args=(backend, "running-backup"))
    timer.start()
    try:
        report = prune_flow(repo=url, wait_minutes=2)
    finally:
        timer.cancel()
    assert report["packs_deleted"] == 1
    assert not list(locks.live_locks(backend))
