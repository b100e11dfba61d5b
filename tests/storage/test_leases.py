"""Leases (storage/repository/locks.py): refreshed while held, stale when no longer refreshed on
any host whatever the PID, created with conditional writes on every store, respected by prune
for readers, and lost leases that stop a commit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from storage import Repository
from storage.backend import open_backend
from storage.errors import InvalidConfig, Locked
from storage.repository import locks
from tests.treegen import assert_same_tree, make_tree

# `backend`: every backend kind, from tests/storage/conftest.py


def _names(backend) -> list[str]:
    return sorted(o.name for o in backend.list("locks/"))


def _wait_until(check, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.02)


def _foreign(backend, run: str, age: float, stale_after: float = 60.0, host: str = "another-host",
             pid: int = 1, kind: str = "backup") -> None:
    doc = {"run": run, "kind": kind, "host": host, "pid": pid, "time": time.time() - age, "stale_after": stale_after}
    backend.save(f"locks/{run}.0", json.dumps(doc).encode())


def test_a_held_lease_is_refreshed_under_a_new_name_and_removed_on_release(backend):
    lease = locks.Lease(backend, "a" * 32, "backup", locks.LeaseTimes(refresh=0.05, stale_after=30)).acquire()
    try:
        _wait_until(lambda: lease.seq >= 3, "three refreshes")
        names = _names(backend)
        assert 1 <= len(names) <= 2 and all(n.startswith("locks/" + "a" * 32 + ".") for n in names)
        assert locks.live_runs(backend) == {"a" * 32}
    finally:
        lease.release()
    assert _names(backend) == []
    assert locks.live_runs(backend) == set()


def test_an_unrefreshed_lease_is_stale_on_every_host_whatever_its_pid(backend):
    _foreign(backend, "b" * 32, age=5)                                     # another host, fresh
    _foreign(backend, "c" * 32, age=120)                                   # another host, not refreshed
    _foreign(backend, "d" * 32, age=120, host=socket.gethostname(), pid=os.getpid())  # alive PID, not refreshed
    assert locks.live_runs(backend) == {"b" * 32}
    assert locks.remove_stale(backend) == ["c" * 32, "d" * 32]
    assert _names(backend) == ["locks/" + "b" * 32 + ".0"]


def test_a_lease_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path):
    backend = open_backend(str(tmp_path / "repo"))
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _foreign(backend, "e" * 32, age=0, host=socket.gethostname(), pid=int(child.stdout))
    assert locks.live_runs(backend) == set()


def test_a_lease_of_an_older_version_is_still_understood(tmp_path):
    backend = open_backend(str(tmp_path / "repo"))
    doc = {"run": "f" * 32, "kind": "prune", "host": "elsewhere", "pid": 7, "time": time.time()}
    backend.save("locks/" + "f" * 32, json.dumps(doc).encode(), exclusive=False)
    assert [d["kind"] for d in locks.live_locks(backend)] == ["prune"]
    locks.release(backend, "f" * 32)
    assert _names(backend) == []


def test_bad_lease_settings_are_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKUPFLOW_LEASE_REFRESH", "soon")
    with pytest.raises(InvalidConfig, match="BACKUPFLOW_LEASE_REFRESH='soon' is not a number"):
        locks.LeaseTimes.from_env()
    monkeypatch.setenv("BACKUPFLOW_LEASE_REFRESH", "60")
    monkeypatch.setenv("BACKUPFLOW_LEASE_STALE", "90")
    with pytest.raises(InvalidConfig, match="more than twice"):
        locks.LeaseTimes.from_env()


@pytest.fixture()
def repo_with_snapshot(tmp_path):
    url = str(tmp_path / "repo")
    repo = Repository.init(url)
    tree = make_tree(tmp_path / "src", seed=5)
    snap = repo.backup(str(tree.root)).snapshot_id
    return url, tree, snap


def test_prune_refuses_while_a_reader_holds_a_lease_and_readers_wait_out_a_prune(repo_with_snapshot, tmp_path,
                                                                                 monkeypatch):
    url, tree, snap = repo_with_snapshot
    reader = Repository.open(url)
    with reader.reading("verify"):
        with pytest.raises(Locked, match="Cannot prune: a verify is running"):
            Repository.open(url).prune()
    assert Repository.open(url).prune().packs_deleted == 0

    backend = Repository.open(url).backend
    monkeypatch.setenv("BACKUPFLOW_LEASE_WAIT", "0")
    prune = locks.acquire(backend, "9" * 32, "prune", what="prune")
    try:
        with pytest.raises(Locked, match="A prune is running on this repository; try the restore again"):
            Repository.open(url).restore(snap, str(tmp_path / "refused"))
        assert not (tmp_path / "refused").exists()
        assert [d["kind"] for d in locks.live_locks(backend)] == ["prune"]  # the reader took its lease back
        monkeypatch.setenv("BACKUPFLOW_LEASE_WAIT", "120")
        waiting = subprocess.Popen([sys.executable, "-c", (
            "import sys; from storage import Repository; "
            "Repository.open(sys.argv[1]).restore(sys.argv[2], sys.argv[3])"), url, snap, str(tmp_path / "waited")],
            env={**os.environ}, cwd=os.getcwd())
        _wait_until(lambda: any(d["kind"] == "read" for d in locks.live_locks(backend)), "the reader's lease")
        assert waiting.poll() is None and not (tmp_path / "waited").exists()  # it waits for the prune
    finally:
        prune.release()
    assert waiting.wait(120) == 0
    assert_same_tree(tree.root, tmp_path / "waited")


def test_a_backup_whose_lease_was_removed_as_stale_does_not_commit(repo_with_snapshot):
    url, tree, _ = repo_with_snapshot
    (tree.root / "new.txt").write_text("new\n")
    repo = Repository.open(url)
    plan = repo.plan_backup(str(tree.root))
    stored = repo.store(plan, repo.scan(plan))
    locks.remove_run(repo.backend, plan.run)  # another host judged it stale
    locks.held(plan.run).refresh()           # what the refresher thread does next
    before = Repository.open(url).snapshots.ids()
    with pytest.raises(Locked, match="went stale.*nothing was committed"):
        repo.commit(plan, stored)
    repo.abandon(plan)
    assert Repository.open(url).snapshots.ids() == before
    assert locks.live_runs(repo.backend) == set() and _names(repo.backend) == []


@pytest.fixture()
def read_only_copy(repo_with_snapshot, tmp_path):
    """The repository seen through a read-only bind mount; skipped where mounting is not allowed."""
    url, tree, snap = repo_with_snapshot
    where = tmp_path / "ro"
    where.mkdir()
    made = subprocess.run(["mount", "--bind", url, str(where)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True, capture_output=True)
        yield str(where), tree, snap
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_read_only_repository_is_read_without_a_lease(read_only_copy, tmp_path):
    url, tree, snap = read_only_copy
    repo = Repository.open(url)
    assert len(repo.ls(snap)) == len(repo.snapshot(snap).tree)
    report = repo.verify(read_data=True)
    assert report.ok, report.problems
    repo.restore(snap, str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")
    assert _names(repo.backend) == []


def test_a_refresh_never_overwrites_an_object_it_did_not_write(backend):
    """Lease objects are created with the store's conditional write: a refresh that finds its
    next name taken by other content fails instead of replacing it."""
    from storage.errors import AlreadyExists

    lease = locks.Lease(backend, "7" * 32, "backup", locks.LeaseTimes(refresh=3600, stale_after=7200)).acquire()
    try:
        backend.save("locks/" + "7" * 32 + ".1", b'{"someone": "else"}')
        with pytest.raises(AlreadyExists):
            lease.refresh()
        assert backend.load("locks/" + "7" * 32 + ".1") == b'{"someone": "else"}'
        assert lease.seq == 0 and "locks/" + "7" * 32 + ".0" in _names(backend)  # still held, under its old name
    finally:
        lease.release()


FROZEN_CHILD = r"""
import sys
from storage import Repository
from storage.errors import Locked
repo = Repository.open(sys.argv[1])
plan = repo.plan_backup(sys.argv[2])
stored = repo.store(plan, repo.scan(plan))
print("stored", flush=True)
sys.stdin.readline()
try:
    repo.commit(plan, stored)
    print("committed", flush=True)
except Locked as exc:
    repo.abandon(plan)
    print("refused:", exc.message, flush=True)
"""


def test_a_frozen_backup_goes_stale_and_does_not_commit_after_a_prune_ran(repo_with_snapshot):
    """A process frozen (SIGSTOP) past its lease's stale time is dead to everyone else, whatever
    its PID: prune removes its lease and its packs. Woken up, it must not commit."""
    url, tree, _ = repo_with_snapshot
    (tree.root / "late.bin").write_bytes(os.urandom(300_000))
    env = {**os.environ, "BACKUPFLOW_LEASE_REFRESH": "0.2", "BACKUPFLOW_LEASE_STALE": "1"}
    child = subprocess.Popen([sys.executable, "-c", FROZEN_CHILD, url, str(tree.root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=os.getcwd())
    try:
        assert child.stdout.readline().strip() == "stored", child.stderr.read()
        backend = Repository.open(url).backend
        assert len(locks.live_runs(backend)) == 1
        child.send_signal(signal.SIGSTOP)
        _wait_until(lambda: not locks.live_runs(backend), "the frozen run's lease going stale")
        before = Repository.open(url).snapshots.ids()
        pruned = Repository.open(url).prune()
        assert pruned.leases_removed == 1 and pruned.packs_deleted >= 1  # its uploads were garbage to others
        child.send_signal(signal.SIGCONT)
        out, err = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
    assert out.startswith("refused:") and "went stale" in out, (out, err)
    repo = Repository.open(url)
    assert repo.snapshots.ids() == before
    assert repo.verify(read_data=True).ok
