"""A backup killed with SIGKILL during upload leaves no snapshot; verify is clean; the next backup
completes, reuses the packs the killed run had uploaded, removes the half-written pack and the
lease the killed run left behind, and restores identically."""

from __future__ import annotations

import random
import signal
import time
import uuid

from storage import Repository
from tests.flows.cli_process import cli_env, run, start
from tests.treegen import assert_same_tree
from tests.suite_password import open_repository

FILES = 16
FILE_SIZE = 8 * 1024 * 1024


def _half_written(repo_dir) -> list[str]:
    return [p.name for p in (repo_dir / "data").rglob(".tmp-*")]


def _packs(repo_dir) -> list[str]:
    data = repo_dir / "data"
    if not data.exists():
        return []
    return [p.name for p in data.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def test_killed_backup_then_clean_verify_and_a_backup_that_reuses_its_packs(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(9)
    for i in range(FILES):
        (src / f"blob{i:02d}.bin").write_bytes(rng.randbytes(FILE_SIZE))  # incompressible: uploads take time
    (src / "notes.txt").write_text("small file\n")
    config = tmp_path / "small-packs.toml"
    config.write_text("[backup]\npack_size_mib = 4\nconnections = 1\n")
    env = cli_env(prefect_server, tmp_path)
    repo_dir = tmp_path / "repo"
    run(["init", "-r", str(repo_dir), "--config", str(config)], env, tmp_path).ok()

    # --no-runner: the process killed is the one doing the backup (tests/flows/test_runner.py
    # kills the runner's process instead)
    proc = start(["backup", str(src), "-r", str(repo_dir), "--json", "--no-runner"], env, tmp_path)
    deadline = time.monotonic() + 120
    while len(_packs(repo_dir)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    uploaded = _packs(repo_dir)
    assert proc.returncode == -signal.SIGKILL, (
        f"the backup ended on its own (exit {proc.returncode}) before it could be killed; make the tree larger")
    assert len(uploaded) >= 3
    half_written = _half_written(repo_dir)
    assert half_written, "the killed run was filling a pack; its temporary file should be there"

    # no snapshot from the killed run, and the repository is consistent
    repo = open_repository(str(repo_dir))
    assert repo.snapshots.all() == []
    report = run(["verify", "--read-data", "-r", str(repo_dir), "--json"], env, tmp_path).json()
    assert report["ok"] is True and report["snapshots"] == 0, report["problems"]

    # a clean full of the same tree, for comparison
    clean = Repository.init(f"memory://{uuid.uuid4().hex}").backup(str(src))

    after = run(["backup", str(src), "-r", str(repo_dir), "--json"], env, tmp_path).json()
    assert after["type"] == "full"
    reused = clean.stats["bytes_added"] - after["bytes_added"]
    assert reused > 0, (
        f"the backup after the crash added {after['bytes_added']} bytes, as much as a clean full "
        f"({clean.stats['bytes_added']}): none of the {len(uploaded)} packs the killed run uploaded was reused. "
        "The killed run's packs were never indexed (IndexWriter writes an index object only every 16 packs or "
        "at the end), and the next run only adopts orphan packs that the index knows.")
    assert set(uploaded) <= set(_packs(repo_dir))
    # ... and it removed what the killed run left: its lease and its half-written pack
    assert after["leftovers_removed"] == {"leases_removed": 1, "temporaries_deleted": len(half_written)}, (
        after.get("leftovers_removed"))
    assert _half_written(repo_dir) == [] and not list((repo_dir / "locks").iterdir())

    report = run(["verify", "--read-data", "-r", str(repo_dir), "--json"], env, tmp_path).json()
    assert report["ok"] is True and report["snapshots"] == 1
    out = tmp_path / "restored"
    run(["restore", "latest", str(out), "-r", str(repo_dir)], env, tmp_path).ok()
    assert_same_tree(src, out)

    pruned = run(["prune", "-r", str(repo_dir)], env, tmp_path).ok()
    assert pruned.stdout.startswith("pruned "), pruned.stdout
    report = run(["verify", "--read-data", "-r", str(repo_dir), "--json"], env, tmp_path).json()
    assert report["ok"] is True and report["snapshots"] == 1
