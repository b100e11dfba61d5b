"""Backups through the Repository front door: chain semantics, defaults, interrupted runs.

A *full* stores every chunk it needs anew; an *incremental* only what its chain lacks; a
*differential* only what its base full lacks (docs/FORMAT.md, "chains"). Restores of older snapshots give
back the tree exactly as it was then.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage import Repository
from storage.backend import open_backend
from storage.layout import INDEX, TREES
from storage.errors import InvalidInput
from tests.treegen import assert_same_tree, fingerprint

SIZES = {"a.bin": 300_000, "b.bin": 200_000, "c.bin": 500_000, "sub/d.bin": 100_000}


def _repo() -> Repository:
    return Repository.init(f"memory://{uuid.uuid4().hex}")


def _write(src, rel: str, size: int) -> None:
    p = src / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(os.urandom(size))  # incompressible, never repeats: bytes added are exact


@pytest.fixture
def src(tmp_path):
    s = tmp_path / "src"
    for rel, size in SIZES.items():
        _write(s, rel, size)
    return s


def test_type_defaults_to_full_then_incremental(src):
    repo = _repo()
    with pytest.raises(InvalidInput, match="no full backup"):
        repo.backup(str(src), type="incremental")
    first = repo.backup(str(src))
    second = repo.backup(str(src))
    assert (first.type, second.type) == ("full", "incremental")
    assert second.parent == first.snapshot_id and second.base_full == first.snapshot_id
    with pytest.raises(InvalidInput, match="--type"):
        repo.backup(str(src), type="weekly")


def test_a_second_full_stores_everything_again(src):
    repo = _repo()
    total = sum(SIZES.values())
    first = repo.backup(str(src), type="full")
    stored_after_first = repo.stats().bytes_stored
    second = repo.backup(str(src), type="full")
    assert first.stats["bytes_new"] == second.stats["bytes_new"] == total
    assert second.stats["bytes_read"] == total  # a full never trusts another chain's entries
    assert second.base_full is None and second.parent is None
    assert repo.stats().bytes_stored >= 2 * stored_after_first - 10_000
    # each chain restores on its own
    assert repo.snapshot(second.snapshot_id).chain != repo.snapshot(first.snapshot_id).chain


def test_incremental_adds_what_its_chain_lacks_differential_what_its_full_lacks(src, tmp_path):
    repo = _repo()
    prints = {}
    full = repo.backup(str(src))
    prints[full.snapshot_id] = fingerprint(src)

    _write(src, "a.bin", 310_000)                                   # change A
    incr1 = repo.backup(str(src))
    assert incr1.type == "incremental"
    assert incr1.stats["bytes_new"] == 310_000                        # A only
    prints[incr1.snapshot_id] = fingerprint(src)

    _write(src, "b.bin", 220_000)                                   # change B
    diff = repo.backup(str(src), type="differential")
    assert diff.parent == full.snapshot_id and diff.base_full == full.snapshot_id
    assert diff.stats["bytes_new"] == 310_000 + 220_000             # A and B: the full lacks both
    prints[diff.snapshot_id] = fingerprint(src)

    _write(src, "sub/new.bin", 50_000)                              # add a file
    os.remove(src / "c.bin")                                         # and delete one
    incr2 = repo.backup(str(src))
    assert incr2.type == "incremental" and incr2.parent == diff.snapshot_id
    assert incr2.stats["bytes_new"] == 50_000                         # the chain already has A and B
    prints[incr2.snapshot_id] = fingerprint(src)

    unchanged = repo.backup(str(src), type="differential")
    assert unchanged.stats["bytes_new"] == 310_000 + 220_000 + 50_000  # still everything since the full

    # every older snapshot restores exactly as the tree was at that time
    for sid, fp in prints.items():
        out = tmp_path / f"restore-{sid[:8]}"
        repo.restore(sid, str(out))
        assert_same_tree(fp, out)
    assert repo.verify(read_data=True).ok


def test_interrupted_backup_leaves_no_snapshot_and_its_packs_are_reused(src, tmp_path):
    repo = _repo()
    plan = repo.plan_backup(str(src))
    stored = repo.store(plan, repo.scan(plan))
    assert stored.stats["bytes_new"] == sum(SIZES.values())
    repo.abandon(plan)  # what a failed flow does; nothing committed
    assert repo.snapshots.all() == []

    again = Repository.open(repo.url).backup(str(src))
    assert again.stats["bytes_new"] == 0 and again.stats["bytes_added"] == 0
    assert len(list(repo.backend.list("data/"))) == stored.stats["packs_added"]
    reopened = Repository.open(repo.url)
    assert reopened.verify(read_data=True).ok
    reopened.restore("latest", str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out")


def test_a_file_that_vanishes_while_backing_up_is_a_warning(src, tmp_path):
    repo = _repo()
    plan = repo.plan_backup(str(src))
    scan = repo.scan(plan)
    os.remove(src / "b.bin")  # gone between scan and read
    stored = repo.store(plan, scan)
    snap = repo.commit(plan, stored)
    assert any("b.bin" in w and "vanished" in w for w in stored.warnings)
    assert "b.bin" not in {e["path"] for e in snap.tree}
    assert snap.stats["warnings"] == 1
    repo.restore("latest", str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out")


def test_backup_records_metadata(src):
    repo = _repo()
    r = repo.backup(str(src), tags=["nightly", "ü"], description="before the refactor", author="ada")
    snap = repo.snapshot(r.snapshot_id)
    assert snap.tags == ["nightly", "ü"] and snap.description == "before the refactor" and snap.author == "ada"
    assert snap.source == str(src) and snap.host
    assert snap.stats["files"] == len(SIZES) and snap.stats["bytes_total"] == sum(SIZES.values())
    assert snap.stats["dirs"] == 1


_LIMITED_BACKUP = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
from storage import Repository
from storage.backend import open_backend
from storage.layout import INDEX, TREES
from storage.errors import BackupError
try:
    Repository.open(sys.argv[1]).backup(sys.argv[2])
except BackupError as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
"""


def test_a_failed_write_is_one_clear_error_and_the_repository_stays_whole(src, tmp_path):
    """A real write failure (the process's file-size limit, which ulimit -f sets): the error
    names the cause, not a knock-on one, and the earlier snapshot still restores."""
    root = tmp_path / "repo"
    first = Repository.init(str(root)).backup(str(src))
    big = tmp_path / "big"
    _write(big, "random.bin", 3 << 20)  # > 1 MiB of new, incompressible data into one pack
    child = subprocess.run([sys.executable, "-c", _LIMITED_BACKUP, str(root), str(big)],
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert child.returncode == 3, child.stdout + child.stderr
    assert child.stdout.startswith("PermanentError") and "ulimit -f" in child.stdout, child.stdout
    assert "Bad file descriptor" not in child.stdout
    repo = Repository.open(str(root))
    assert [s.id for s in repo.snapshots.all()] == [first.snapshot_id]
    assert repo.verify(read_data=True).ok
    assert not list(root.rglob(".tmp-*")), "the failed pack's temporary file was left behind"
    repo.restore("latest", str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out")


class _Requests:
    """A real backend that notes every request made of it (what a cloud store bills)."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in ("save", "load", "stat", "list", "remove"):
            return attr

        def noted(*args, **kwargs):
            self.seen.append((name, str(args[0]) if args else ""))
            return attr(*args, **kwargs)
        return noted


@pytest.mark.parametrize("password", [None, "pw"])
def test_a_backup_that_changed_nothing_reads_no_index_and_writes_no_tree(src, tmp_path, password):
    # An unchanged re-backup is the most common scheduled run: it names its parent's tree
    # instead of encoding, sealing and offering the same tree again, and never loads the index.
    url = str(tmp_path / "repo")
    Repository.init(url, password=password)
    first = Repository.open(url, password=password).backup(str(src))
    requests = _Requests(open_backend(url))
    again = Repository.open(url, password=password, backend=requests).backup(str(src))
    assert again.stats["files_read"] == 0
    assert not [r for r in requests.seen if r[0] == "save" and r[1].startswith(TREES)], requests.seen
    assert not [r for r in requests.seen if r[0] == "load" and r[1].startswith(INDEX)], requests.seen
    heads = Repository.open(url, password=password).snapshots
    assert heads.header(again.snapshot_id).tree_id == heads.header(first.snapshot_id).tree_id
    as_backed_up = fingerprint(src)
    _write(src, "sub/new.bin", 1000)  # a change: a new tree
    changed = Repository.open(url, password=password).backup(str(src))
    assert heads.header(changed.snapshot_id).tree_id != heads.header(first.snapshot_id).tree_id
    repo = Repository.open(url, password=password)
    assert repo.verify(read_data=True).ok
    repo.restore(again.snapshot_id, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == as_backed_up
