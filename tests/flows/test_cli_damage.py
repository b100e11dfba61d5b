"""Damage through the CLI against the test Prefect server: a damaged manifest is skipped and
named, prune refuses in one sentence, `repair index` and `repair snapshots` (after approval)
heal the repository, and a damaged config is called damaged."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from storage import Repository
from storage.audit import AuditLog
from tests.flows.cli_process import cli_env, run, start, wait_for_approval
from tests.storage.test_damage_locality import flip_byte

pytestmark = pytest.mark.prefect


@pytest.fixture
def setup(prefect_server, tmp_path):
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    ids = {}
    for name in ("one", "two"):
        src = tmp_path / name
        src.mkdir()
        (src / f"{name}.bin").write_bytes(os.urandom(100_000))
        ids[name] = repo.backup(str(src)).snapshot_id
    cfg = tmp_path / "config.toml"
    cfg.write_text("[guardian]\ntimeout_seconds = 60\n")
    work = tmp_path / "cwd"
    work.mkdir()
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(cfg))
    return env, work, repo_dir, ids, AuditLog(tmp_path / "audit")


def test_damaged_manifest_is_skipped_named_and_repaired_after_approval(setup, tmp_path):
    env, work, repo_dir, ids, audit = setup
    flip_byte(repo_dir / "snapshots" / ids["two"])
    listing = run(["snapshots", "--json"], env, work)
    assert [s["id"] for s in listing.json()["snapshots"]] == [ids["one"]]
    assert f"skipped snapshot {ids['two'][:8]}" in listing.stderr and "Traceback" not in listing.stderr
    assert ids["two"] in run(["stats", "--json"], env, work).json()["damaged_snapshots"]
    restored = run(["restore", "latest", str(tmp_path / "latest")], env, work).ok()
    assert f"warning: snapshot {ids['two'][:8]} was skipped" in restored.stderr      # the newest, damaged
    assert f"of snapshot {ids['one'][:8]}" in restored.stdout
    line = run(["prune"], env, work).one_sentence_error()
    assert "Cannot prune" in line and ids["two"][:8] in line and "deleted nothing" in line
    planned = run(["forget", ids["two"][:10], "--dry-run", "--json"], env, work).json()
    assert planned["snapshots"] == [ids["two"]] and planned["damaged"] == [ids["two"]]

    proc = start(["repair", "snapshots"], env, work)
    run_id, _ = wait_for_approval(proc, "repair snapshots")
    assert (repo_dir / "snapshots" / ids["two"]).exists()          # nothing goes before someone approves
    assert run(["approve", run_id, "--as", "bob", "--reason", "damaged"], env, work).returncode == 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"removed 1 unreadable snapshot(s) ({ids['two'][:8]})" in out
    assert not (repo_dir / "snapshots" / ids["two"]).exists()
    assert run(["verify", "--json"], env, work).json()["ok"]
    done = [e for e in audit.get_events(event_type="repair.completed")]
    assert done and done[-1]["details"]["removed"] == [ids["two"]]


def test_damaged_index_object_then_repair_index(setup, tmp_path):
    env, work, repo_dir, ids, audit = setup
    flip_byte(sorted((repo_dir / "index").iterdir())[0])
    restored = run(["restore", ids["one"], str(tmp_path / "out"), "--json"], env, work)
    assert restored.json()["files"] == 1                             # readers go on
    verify = run(["verify", "--json"], env, work)
    assert verify.returncode == 6 and "repair index" in verify.stdout
    (tmp_path / "one" / "later.txt").write_text("later\n")
    inc = run(["backup", str(tmp_path / "one"), "--json"], env, work).json()["snapshot_id"]
    proc = start(["forget", inc[:12], "--prune"], env, work)
    run_id, _ = wait_for_approval(proc, "forget")
    assert run(["approve", run_id, "--as", "bob", "--reason", "test"], env, work).returncode == 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err                                  # forgotten; the prune waits for the repair
    assert f"forgot 1 snapshot(s) ({inc[:8]}); not pruned: Cannot prune: index object(s)" in out
    fixed = run(["repair", "index"], env, work).ok()
    assert "removed 1 index object(s)" in fixed.stdout
    assert run(["verify", "--read-data", "--json"], env, work).json()["ok"]


def test_damaged_config_is_called_damaged(setup):
    env, work, repo_dir, ids, audit = setup
    doc = json.loads((repo_dir / "config").read_text())
    doc["chunker"]["seed"] ^= 4
    os.chmod(repo_dir / "config", 0o644)
    (repo_dir / "config").write_text(json.dumps(doc))
    line = run(["snapshots"], env, work).one_sentence_error()
    assert "repository config" in line and "damaged" in line and "not a backupflow repository" not in line


def test_a_deleted_newest_manifest_is_noticed_through_the_audit_log(setup, tmp_path):
    env, work, repo_dir, ids, audit = setup
    src = tmp_path / "one"
    (src / "later.txt").write_text("later\n")
    newest = run(["backup", str(src), "--json"], env, work).json()["snapshot_id"]   # recorded in the audit log
    os.chmod(repo_dir / "snapshots" / newest, 0o644)
    (repo_dir / "snapshots" / newest).unlink()
    restored = run(["restore", "latest", str(tmp_path / "out")], env, work).ok()
    assert f"warning: snapshot {newest[:8]}" in restored.stderr and "audit log" in restored.stderr
    verify = run(["verify", "--json"], env, work)
    assert verify.returncode == 6 and newest in verify.stdout and "audit log" in verify.stdout


def test_a_repository_made_again_at_the_same_place_is_not_reported_damaged(prefect_server, tmp_path):
    """Deleting a repository and making a new one at the same path is no damage: the audit log's
    snapshots of the old one are not expected in the new one (verify and 'restore latest')."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("first\n")
    work = tmp_path / "cwd"
    work.mkdir()
    repo_dir = tmp_path / "repo"
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir))
    old = run(["backup", str(src), "--json"], env, work).json()["snapshot_id"]   # recorded in the audit log
    shutil.rmtree(repo_dir)
    new = run(["backup", str(src), "--json"], env, work).json()["snapshot_id"]
    assert new != old  # a new repository: a new run, a new manifest
    verify = run(["verify", "--json"], env, work)
    assert verify.returncode == 0 and verify.json()["ok"], verify.stdout + verify.stderr
    restored = run(["restore", "latest", str(tmp_path / "out")], env, work).ok()
    assert "audit log" not in restored.stderr, restored.stderr
