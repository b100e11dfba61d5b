"""`backupflow archive` killed with SIGKILL (the whole process group) after its upload, after its
verify (waiting for approval of the forget) and after its forget (waiting for the prune's
slot): nothing is lost, and a rerun finishes the work without a second copy of any archive."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from prefect import get_client
from prefect.concurrency.sync import concurrency

from storage import Repository
from storage.archive import list_archives
from tasks.coordination import slot_name
from tests.flows.cli_process import cli_env, run, start, wait_for_approval
from tests.treegen import assert_same_tree

pytestmark = pytest.mark.prefect


@pytest.fixture
def setup(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    ids, copies = [], {}
    for i in range(4):
        # incompressible, so the archives take a moment to write and read back
        (src / f"part{i}.bin").write_bytes(os.urandom(2_000_000))
        sid = repo.backup(str(src), type="full" if i in (0, 3) else "incremental").snapshot_id
        ids.append(sid)
        copies[sid] = tmp_path / f"copy{i}"
        shutil.copytree(src, copies[sid])
    work = tmp_path / "cwd"
    work.mkdir()
    plain = tmp_path / "plain.toml"
    plain.write_text("[backup]\ncompression_level = 1\n")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(plain),
                  BACKUPFLOW_LEASE_WAIT="120")
    return env, work, repo_dir, tmp_path / "archives", ids, copies


ARGS = ["archive", "--older-than", "0d", "--keep", "1", "--no-runner"]


def _start(env, work, dest, extra=()):
    # a session of its own, so the whole process group can be killed as a user's Ctrl-\ or OOM would
    return start([*ARGS, "--to", str(dest), *extra], env, work, start_new_session=True)


def _kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the archive ended on its own ({proc.returncode}) before the kill"


def _wait_for(condition, proc, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the archive ended ({proc.returncode}) before {what}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.005)


def _rerun_completes(env, work, repo_dir, dest, ids, copies, tmp_path) -> dict:
    out = run([*ARGS, "--to", str(dest), "--json"], env, work).json()
    repo = Repository.open(str(repo_dir))
    assert [s.id for s in repo.snapshots.all()] == [ids[3]]
    assert repo.verify(read_data=True).ok
    # exactly one archive and one metadata file per archived snapshot, nothing half-written
    assert sorted(p.name for p in dest.iterdir()) == sorted([f"{s}.tar.gz" for s in ids[:3]] +
                                                            [f"{s}.json" for s in ids[:3]])
    assert [m.id for m in list_archives(str(dest))] == ids[:3]
    for sid in ids[:3]:
        untarred = tmp_path / f"check-{sid[:8]}"
        untarred.mkdir()
        subprocess.run(["tar", "-xzf", str(dest / f"{sid}.tar.gz"), "-C", str(untarred)], check=True)
        assert_same_tree(copies[sid], untarred, mtimes=False)
    return out


def test_killed_right_after_an_upload_then_a_rerun_completes(setup, tmp_path):
    env, work, repo_dir, dest, ids, copies = setup
    proc = _start(env, work, dest)
    _wait_for(lambda: dest.is_dir() and any(p.name.endswith(".tar.gz") for p in dest.iterdir()), proc,
              "first archive uploaded")
    _kill(proc)
    assert len(Repository.open(str(repo_dir)).snapshots.all()) == 4  # nothing forgotten before its archive counted
    out = _rerun_completes(env, work, repo_dir, dest, ids, copies, tmp_path)
    assert set(out["forgotten"]) == set(ids[:3])


def test_killed_after_verify_while_the_forget_waits_for_approval_then_a_rerun_completes(setup, tmp_path):
    env, work, repo_dir, dest, ids, copies = setup
    strict = tmp_path / "strict.toml"
    strict.write_text('[backup]\ncompression_level = 1\n[guardian]\nrequire_approval = ["medium", "high", '
                      '"critical"]\ntimeout_seconds = 300\n')
    proc = _start({**env, "BACKUPFLOW_CONFIG": str(strict)}, work, dest)
    _, seen = wait_for_approval(proc, "archive")
    assert "MEDIUM risk: archiving moves snapshots" in "".join(seen)
    _kill(proc)
    # every archive was verified and published; no snapshot left the repository
    assert [m.id for m in list_archives(str(dest))] == ids[:3]
    assert len(Repository.open(str(repo_dir)).snapshots.all()) == 4
    out = _rerun_completes(env, work, repo_dir, dest, ids, copies, tmp_path)
    assert out["published"] == [] and set(out["archived"]) == set(ids[:3])  # found, not written again


def test_killed_after_the_forget_while_the_prune_waits_then_a_rerun_prunes(setup, tmp_path):
    env, work, repo_dir, dest, ids, copies = setup
    repo = Repository.open(str(repo_dir))
    name = slot_name(repo.config.id)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, timeout_seconds=60, strict=True):  # the prune will wait for this slot
        proc = _start(env, work, dest)
        _wait_for(lambda: len(list((repo_dir / "snapshots").iterdir())) == 1, proc, "the forget")
        _kill(proc)
    packs_before = sum(1 for p in (repo_dir / "data").rglob("*") if p.is_file())
    out = _rerun_completes(env, work, repo_dir, dest, ids, copies, tmp_path)
    assert out["snapshots"] == [] and out["prune"]["packs_deleted"] >= 1
    assert sum(1 for p in (repo_dir / "data").rglob("*") if p.is_file()) < packs_before
