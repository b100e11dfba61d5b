"""`backupflow restore` over existing files waits for a human, answered from another terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import Repository
from storage.audit import AuditLog
from tests.flows.cli_process import wait_for_approval

pytestmark = pytest.mark.prefect

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


@pytest.fixture
def setup(prefect_server, tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[guardian]\ntimeout_seconds = 600\n[audit]\naudit_path = {json.dumps(str(tmp_path / "audit"))}\n')
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "notes.md").write_text("version one\n")
    (src / "docs" / "a.txt").write_text("alpha\n")
    repo = str(tmp_path / "repo")
    Repository.init(repo).backup(str(src))
    target = tmp_path / "work"
    (target / "docs").mkdir(parents=True)
    (target / "notes.md").write_text("unsaved edits\n")  # the restore would overwrite this
    env = {**os.environ, "BACKUPFLOW_CONFIG": str(cfg), "BACKUPFLOW_REPO": repo}
    env.pop("BACKUPFLOW_AUDIT_PATH", None)
    return env, target, tmp_path / "audit"


def start_restore(env, target):
    proc = subprocess.Popen([BACKUPFLOW, "restore", "latest", str(target)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id, seen = wait_for_approval(proc, "restore")
    return proc, run_id, seen


def answer(env, *args):
    return subprocess.run([BACKUPFLOW, *args], env=env, capture_output=True, text=True, timeout=120)


def test_restore_over_existing_files_waits_and_completes_once_approved(setup):
    env, target, audit_dir = setup
    proc, run_id, seen = start_restore(env, target)
    assert "HIGH risk" in "".join(seen) and "overwrites 1 existing file" in "".join(seen)
    time.sleep(1)
    assert (target / "notes.md").read_text() == "unsaved edits\n"
    ok = answer(env, "approve", run_id, "--as", "bob", "--reason", "roll back notes")
    assert ok.returncode == 0, ok.stderr
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "restored" in out
    assert (target / "notes.md").read_text() == "version one\n"
    types = [e["type"] for e in AuditLog(audit_dir).get_events(flow_run_id=run_id)]
    assert types == ["restore.requested", "approval.requested", "approval.decided", "restore.approved",
                     "restore.completed"]


def test_rejected_restore_exits_non_zero_and_leaves_the_target_untouched(setup):
    env, target, audit_dir = setup
    proc, run_id, _ = start_restore(env, target)
    no = answer(env, "reject", run_id, "--as", "bob", "--reason", "keep my edits")
    assert no.returncode == 0, no.stderr
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 11
    assert "rejected by bob: keep my edits" in err and "Traceback" not in err
    assert (target / "notes.md").read_text() == "unsaved edits\n"
    assert not (target / "docs" / "a.txt").exists()
    assert AuditLog(audit_dir).get_events(flow_run_id=run_id)[-1]["type"] == "restore.rejected"


def test_backup_and_restore_into_a_new_directory_are_audited_without_approval(setup, tmp_path):
    env, _, audit_dir = setup
    backup = answer(env, "backup", str(tmp_path / "src"), "--json")
    assert backup.returncode == 0, backup.stderr
    fresh = tmp_path / "fresh"
    restore = answer(env, "restore", "latest", str(fresh))  # medium risk: no approval by default
    assert restore.returncode == 0, restore.stderr
    assert (fresh / "notes.md").read_text() == "version one\n"
    listed = answer(env, "audit", "--json")
    assert listed.returncode == 0, listed.stderr
    types = [e["type"] for e in json.loads(listed.stdout)["events"]]
    assert types == ["backup.started", "backup.completed", "restore.requested", "restore.completed"]
    completed = json.loads(answer(env, "audit", "--type", "backup.completed", "--json").stdout)["events"][0]
    assert completed["details"]["snapshot"] == json.loads(backup.stdout)["snapshot_id"]
    assert completed["flow_run_id"]
    verified = answer(env, "audit", "--verify")
    assert verified.returncode == 0 and "intact: 4 events" in verified.stdout
    # a bad config is itself on the record
    bad = answer({**env, "BACKUPFLOW_CONFIG": str(tmp_path / "missing.toml"),
                  "BACKUPFLOW_AUDIT_PATH": str(audit_dir)}, "backup", str(tmp_path / "src"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert AuditLog(audit_dir).get_events(event_type="config.error")
