"""Hostile repositories and damaged data through the installed `backupflow restore`, against
the test Prefect server: one sentence on stderr, the documented exit code, the files left out
named, nothing written outside the target (issue 9 parts 1, 2 and 6)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from storage import Repository
from storage.objects import pack_name
from tests.flows.cli_process import cli_env, run
from tests.hostile_trees import Kit, corpus, save
from tests.suite_password import open_repository

CONTENT = b"intact content\n" * 500


@pytest.fixture(scope="module")
def hostile(prefect_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli-hostile")
    (work / "src").mkdir()
    (work / "src" / "ok.txt").write_bytes(CONTENT)
    (work / "src" / "damaged.bin").write_bytes(os.urandom(200_000))
    repo = Repository.init(str(work / "repo"))
    sid = repo.backup(str(work / "src")).snapshot_id
    entry = next(e for e in repo.snapshot(sid).tree if e["path"] == "ok.txt")
    (work / "outside").mkdir()
    cases = {c.name: c for c in corpus(Kit(entry, str(work / "outside")))}
    return {"work": work, "env": cli_env(prefect_server, work), "repo": repo, "sid": sid, "cases": cases}


def _restore(h, snapshot: str, target, *extra: str):
    return run(["restore", snapshot, str(target), "-r", h["repo"].url, *extra], h["env"], h["work"])


@pytest.mark.parametrize("name", ["issue-9-unknown-type-and-link", "dotdot", "invalid-json", "size-minus-5"])
def test_a_refused_tree_is_one_sentence_with_its_exit_code(hostile, tmp_path, name):
    case = hostile["cases"][name]
    bad = save(hostile["repo"], hostile["sid"], case)
    target = tmp_path / "target"
    res = _restore(hostile, bad, target)
    line = res.one_sentence_error()
    assert res.returncode == case.exit_code and case.says in line, (res.returncode, line)
    assert not target.exists() or not os.listdir(target)
    assert os.listdir(hostile["work"] / "outside") == []


def test_a_file_that_cannot_be_restored_is_named_and_the_rest_restored(hostile, tmp_path):
    bad = save(hostile["repo"], hostile["sid"], hostile["cases"]["claimed-10TB"])
    res = _restore(hostile, bad, tmp_path / "t1")
    line = res.one_sentence_error()
    assert res.returncode == 13 and "1 file(s)" in line and "big" in line
    assert "not restored: big: the snapshot says 10995116277760 bytes" in res.stdout
    assert (tmp_path / "t1" / "ok.txt").read_bytes() == CONTENT and not (tmp_path / "t1" / "big").exists()

    res = _restore(hostile, bad, tmp_path / "t2", "--json")
    assert res.returncode == 13
    doc = json.loads(res.stdout)
    assert list(doc["not_restored"]) == ["big"] and doc["files"] == 1


def test_a_damaged_chunk_exits_13_naming_the_file(hostile, tmp_path):
    """One flipped bit in one chunk: the file that holds it is left out and named, exit 13."""
    work = tmp_path / "w"
    (work / "src").mkdir(parents=True)
    (work / "src" / "ok.txt").write_bytes(CONTENT)
    (work / "src" / "damaged.bin").write_bytes(os.urandom(200_000))
    repo = Repository.init(str(work / "repo"))
    repo.backup(str(work / "src"))
    cid = next(e for e in repo.snapshot("latest").tree if e["path"] == "damaged.bin")["chunks"][0]
    loc = repo.index.locations(cid)[0]
    path = work / "repo" / pack_name(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + 100] ^= 1
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    res = run(["restore", "latest", str(work / "out"), "-r", str(work / "repo")], hostile["env"], hostile["work"])
    line = res.one_sentence_error()
    assert res.returncode == 13 and "damaged.bin" in line and "is damaged" in line
    assert "not restored: damaged.bin" in res.stdout
    assert (work / "out" / "ok.txt").read_bytes() == CONTENT and not (work / "out" / "damaged.bin").exists()


def test_restore_latest_afile_sub_is_one_sentence(hostile, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.txt").write_bytes(CONTENT)
    repo = Repository.init(str(tmp_path / "repo"))  # in the module's one, 'latest' may be a hostile snapshot
    repo.backup(str(tmp_path / "src"))
    (tmp_path / "afile").write_text("a file")
    res = _restore({**hostile, "repo": repo}, "latest", tmp_path / "afile" / "sub")
    line = res.one_sentence_error()
    assert res.returncode == 2 and "is a file, not a directory" in line
    assert (tmp_path / "afile").read_text() == "a file"


@pytest.fixture
def small_mount(tmp_path):
    """A 1 MiB tmpfs (full after 1 MiB), mounted as root; skipped where mounting is not allowed."""
    where = tmp_path / "mnt"
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_and_read_only_targets_are_one_sentence_each(hostile, small_mount, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.txt").write_bytes(CONTENT)
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    repo = Repository.init(str(tmp_path / "repo"))  # the module's repository holds hostile snapshots
    repo.backup(str(tmp_path / "src"))
    hostile = {**hostile, "repo": repo}
    res = _restore(hostile, "latest", small_mount / "full")
    line = res.one_sentence_error()
    assert res.returncode == 8 and "No space is left" in line
    assert not (small_mount / "full" / "big.bin").exists()
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    # a new folder: over existing files the restore would first wait for approval
    res = _restore(hostile, "latest", small_mount / "new")
    line = res.one_sentence_error()
    assert res.returncode == 8 and "read-only file system" in line
    assert open_repository(repo.url).verify(read_data=True).ok  # nothing backed up was harmed
