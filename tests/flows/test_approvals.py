"""Approval as a paused Prefect run, against the real test server, answered from other processes."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect import flow, get_client
from prefect.flow_runs import resume_flow_run

from flows.approvals import get_guardian
from storage.audit import AuditLog
from tasks.approval_gate import request_approval
from tests.approver_keys import make_key, toml_value

pytestmark = pytest.mark.prefect

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


@flow(name="guarded-operation-test")
def guarded_operation(operation: dict, marker: str) -> str:
    request_approval(operation)
    Path(marker).write_text("the protected side effect happened")  # stands in for the restore
    return "done"


def restore_op(requester="alice"):
    return {"kind": "restore", "repo": "file:///srv/repo", "snapshot": "snap1", "target": "/srv/ws",
            "requester": requester,
            "preview": {"create": ["new.txt"], "overwrite": ["notes.md", "src/app.py"], "delete": [], "bytes": 2048}}


def delete_last_op(requester="alice"):
    return {"kind": "delete", "repo": "file:///srv/repo", "snapshots": ["snap1"], "last_snapshot": True,
            "full_with_dependants": False, "bytes_freed": 1 << 20, "requester": requester}


@pytest.fixture
def env(prefect_server, tmp_path, monkeypatch):
    """A config; returns a function that writes the [guardian] section. The approval timeout is
    long: a test that answers ends at its answer, and on a loaded machine the five ``backupflow
    approve`` processes of a two-person test took longer than a one-minute timeout."""
    audit_dir = tmp_path / "audit"

    def configure(**guardian) -> Path:
        guardian.setdefault("timeout_seconds", 600)
        lines = ["[guardian]"] + [f"{k} = {toml_value(v)}" for k, v in guardian.items()]
        lines += ["[audit]", f"audit_path = {json.dumps(str(audit_dir))}"]
        cfg = tmp_path / "config.toml"
        cfg.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("BACKUPFLOW_CONFIG", str(cfg))
        return cfg

    monkeypatch.delenv("BACKUPFLOW_AUDIT_PATH", raising=False)
    configure()
    yield configure
    get_guardian().set_waiting_notifier(None)


class Run:
    """The test flow running in a background thread; ``run_id`` once it waits for approval."""

    def __init__(self, operation: dict, tmp_path: Path):
        self.marker = tmp_path / "side-effect.txt"
        waiting: queue.Queue = queue.Queue()
        get_guardian().set_waiting_notifier(lambda run_id, request, url: waiting.put((run_id, url)))
        self.state = None
        self.thread = threading.Thread(target=self._run, args=(operation,), daemon=True)
        self.thread.start()
        self.run_id, self.ui_url = waiting.get(timeout=300)

    def _run(self, operation):
        self.state = guarded_operation(operation, str(self.marker), return_state=True)

    def finish(self, timeout=300):  # bounds only: each returns as soon as the run gets there
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish after the decision"
        return self.state

    def server_state(self):
        with get_client(sync_client=True) as client:
            return client.read_flow_run(self.run_id).state

    def wait_paused(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_state().is_paused():
                return
            time.sleep(0.2)
        raise AssertionError("the run never paused")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BACKUPFLOW, *args], capture_output=True, text=True, env=dict(os.environ), timeout=120)


def audit_types(tmp_path: Path, run_id: str) -> list[str]:
    return [e["type"] for e in AuditLog(tmp_path / "audit").get_events(flow_run_id=run_id)]


def test_paused_run_is_listed_and_approved_from_another_process(env, tmp_path):
    run = Run(restore_op(), tmp_path)
    run.wait_paused()
    assert not run.marker.exists()
    assert run.ui_url and run.run_id in run.ui_url

    listed = cli("pending", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [r for r in json.loads(listed.stdout)["pending"] if r["run_id"] == run.run_id]
    assert mine and mine[0]["risk"] == "high" and mine[0]["requester"] == "alice"
    assert "overwrites 2 existing files" in mine[0]["reason"]

    done = cli("approve", run.run_id, "--reason", "planned rollback", "--as", "bob")
    approved_at = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert "Approved run" in done.stdout
    state = run.finish()
    assert time.monotonic() - approved_at < 5  # the decision takes effect within seconds
    assert state.is_completed()
    assert run.marker.exists()
    assert audit_types(tmp_path, run.run_id) == ["approval.requested", "approval.decided", "restore.approved"]
    assert AuditLog(tmp_path / "audit").verify().ok


def test_rejected_run_fails_saying_rejected_and_changes_nothing(env, tmp_path):
    run = Run(restore_op(), tmp_path)
    run.wait_paused()
    done = cli("reject", run.run_id, "--reason", "wrong snapshot", "--as", "bob")
    assert done.returncode == 0, done.stderr
    state = run.finish()
    assert state.is_failed()
    assert "rejected by bob: wrong snapshot" in state.message
    assert run.server_state().is_failed()
    assert not run.marker.exists()
    events = AuditLog(tmp_path / "audit").get_events(flow_run_id=run.run_id)
    assert events[-1]["type"] == "restore.rejected" and events[-1]["outcome"] == "rejected"


def test_unanswered_request_times_out_as_rejected(env, tmp_path):
    env(timeout_seconds=3)
    run = Run(restore_op(), tmp_path)
    state = run.finish()
    assert state.is_failed()
    assert "Nobody approved" in state.message and "rejected" in state.message
    assert not run.marker.exists()
    assert "approval.timed_out" in audit_types(tmp_path, run.run_id)
    late = cli("approve", run.run_id, "--as", "bob")
    assert late.returncode != 0 and "not waiting for approval" in late.stderr
    assert "Traceback" not in late.stderr


def test_requester_cannot_approve_own_critical_request(env, tmp_path):
    run = Run(delete_last_op(requester="alice"), tmp_path)
    run.wait_paused()
    refused = cli("approve", run.run_id, "--as", "alice")
    assert refused.returncode != 0
    assert "alice may not approve their own critical request" in refused.stderr
    assert "Traceback" not in refused.stderr
    # the same answer given through the Prefect UI's form (a raw resume) is refused by the run
    resume_flow_run(run.run_id, run_input={"approved": True, "approver": "alice", "reason": "mine"})
    time.sleep(2.5)
    run.wait_paused()
    assert not run.marker.exists()
    assert audit_types(tmp_path, run.run_id).count("approval.refused") == 2
    ok = cli("approve", run.run_id, "--as", "bob", "--reason", "checked")
    assert ok.returncode == 0, ok.stderr
    assert run.finish().is_completed() and run.marker.exists()


def test_two_person_approval_needs_two_different_approver_keys(env, tmp_path):
    bob_key, bob_pub = make_key(tmp_path, "bob")
    carol_key, carol_pub = make_key(tmp_path, "carol")
    env(critical_approvals=2, approvers=["bob", "carol"], approver_keys={"bob": [bob_pub], "carol": [carol_pub]})
    run = Run(delete_last_op(requester="alice"), tmp_path)
    run.wait_paused()
    outsider = cli("approve", run.run_id, "--as", "mallory", "--key", str(bob_key))
    assert outsider.returncode != 0 and "mallory is not an allowed approver" in outsider.stderr
    first = cli("approve", run.run_id, "--key", str(bob_key))  # the key says who is signing
    assert first.returncode == 0, first.stderr
    assert "from bob (signed with SHA256:" in first.stdout and "1 more from someone else" in first.stdout
    again = cli("approve", run.run_id, "--key", str(bob_key))
    assert again.returncode != 0 and "already approved" in again.stderr
    # bob's key under carol's name is not carol
    posing = cli("approve", run.run_id, "--as", "carol", "--key", str(bob_key))
    assert posing.returncode != 0 and "does not verify with the keys listed for carol" in posing.stderr
    assert not run.marker.exists() and run.state is None
    second = cli("approve", run.run_id, "--key", str(carol_key), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["approved_by"] == ["bob", "carol"]
    assert run.finish().is_completed() and run.marker.exists()
    decided = [e for e in AuditLog(tmp_path / "audit").get_events(flow_run_id=run.run_id)
               if e["type"] == "approval.decided"]
    assert [e["details"]["decision"]["approver"] for e in decided] == ["bob", "carol"]
    assert all(e["details"]["decision"]["signature"] for e in decided)
