"""Leftovers of killed runs (storage/repository/leftovers.py): the next backup or prune removes
the stale leases and the half-written temporary files whose writer is gone, says so, and keeps
what a live writer may still be writing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from storage import Repository
from storage.backend.local import HOST_TAG
from storage.repository import locks
from tests.treegen import make_tree


def _dead_pid() -> int:
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(out.stdout)


def _temp(root, name: str, size: int, age: float = 0.0):
    path = root / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


@pytest.fixture()
def repo(tmp_path):
    root = tmp_path / "repo"
    Repository.init(str(root))
    tree = make_tree(tmp_path / "src", seed=21)
    Repository.open(str(root)).backup(str(tree.root))
    return root, tree


def _killed_lease(root, run: str) -> None:
    doc = {"run": run, "kind": "backup", "host": socket.gethostname(), "pid": _dead_pid(), "time": time.time()}
    (root / "locks").mkdir(exist_ok=True)
    (root / "locks" / f"{run}.0").write_text(json.dumps(doc))


def test_the_next_backup_removes_what_killed_runs_left_and_says_so(repo):
    root, tree = repo
    dead = _temp(root, f".tmp-{HOST_TAG}-{_dead_pid()}-{'1' * 32}", 500_000)
    mine = _temp(root, f".tmp-{HOST_TAG}-{os.getpid()}-{'2' * 32}", 1000)           # a live writer's
    other_host = _temp(root, f".tmp-0badc0de-{os.getpid()}-{'3' * 32}", 1000)         # not provably dead
    old_style_old = _temp(root, f".tmp-{'4' * 32}", 2000, age=3 * 3600)              # not written for 3 h
    _killed_lease(root, "a" * 32)
    result = Repository.open(str(root)).backup(str(tree.root))
    assert result.stats["leftovers_removed"] == {"leases_removed": 1, "temporaries_deleted": 2}
    assert not dead.exists() and not old_style_old.exists()
    assert mine.exists() and other_host.exists()
    assert sorted(p.name for p in (root / "locks").iterdir()) == []


def test_prune_removes_them_too_and_a_dry_run_only_counts_them(repo):
    root, _ = repo
    _temp(root, f".tmp-{HOST_TAG}-{_dead_pid()}-{'5' * 32}", 300_000)
    _killed_lease(root, "b" * 32)
    seen = Repository.open(str(root)).prune(dry_run=True)
    assert (seen.temporaries_deleted, seen.leases_removed) == (1, 1) and seen.bytes_freed >= 300_000
    assert len(list((root / "locks").iterdir())) == 1
    done = Repository.open(str(root)).prune()
    assert (done.temporaries_deleted, done.leases_removed) == (1, 1)
    assert not list((root / "data").rglob(".tmp-*")) and not list((root / "locks").iterdir())
    assert locks.live_runs(Repository.open(str(root)).backend) == set()


def test_a_temporary_of_another_host_waits_for_the_safe_age(repo, monkeypatch):
    root, tree = repo
    monkeypatch.setenv("BACKUPFLOW_TEMP_SAFE_AGE", "600")
    young = _temp(root, f".tmp-0badc0de-{_dead_pid()}-{'6' * 32}", 1000, age=300)
    old = _temp(root, f".tmp-0badc0de-{_dead_pid()}-{'7' * 32}", 1000, age=900)
    stats = Repository.open(str(root)).backup(str(tree.root)).stats
    assert stats["leftovers_removed"] == {"leases_removed": 0, "temporaries_deleted": 1}
    assert young.exists() and not old.exists()
