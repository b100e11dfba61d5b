"""Approvals that prove who approved (issue 10): each bypass a requester on the same machine
tried now fails, and the signed and server-authenticated paths work, against real servers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from storage import Repository
from storage.audit import AuditLog
from storage.config import GuardianSettings
from tests.approver_keys import first_policy, make_key, toml_value
from tests.flows.cli_process import wait_for_approval
from tests.prefect_server import PrefectServer
from tests.suite_password import SUITE_ENV

pytestmark = pytest.mark.prefect

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


def _workspace(tmp_path: Path, guardian: dict, server_env: dict[str, str]) -> tuple[dict, Path, Path]:
    """A repository with one snapshot, a target whose file a restore would overwrite (high
    risk), and the CLI's environment with ``guardian`` as the policy."""
    lines = ["[guardian]", "timeout_seconds = 600"] + [f"{k} = {toml_value(v)}" for k, v in guardian.items()]
    lines += ["[audit]", f"audit_path = {json.dumps(str(tmp_path / 'audit'))}"]
    cfg = tmp_path / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.md").write_text("version one\n")
    repo = str(tmp_path / "repo")
    Repository.init(repo).backup(str(src))
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.md").write_text("unsaved edits\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPFLOW_", "PREFECT_API")) or k in SUITE_ENV}
    env.update(server_env, BACKUPFLOW_CONFIG=str(cfg), BACKUPFLOW_REPO=repo, USER="alice")
    return env, target, tmp_path / "audit"


def _start_restore(env, target):
    proc = subprocess.Popen([BACKUPFLOW, "restore", "latest", str(target)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id, _ = wait_for_approval(proc, "restore")
    return proc, run_id


def _cli(env, *args):
    return subprocess.run([BACKUPFLOW, *args], env=env, capture_output=True, text=True, timeout=120)


def _refusals(audit_dir: Path, run_id: str) -> list[str]:
    return [e["details"]["reason"] if "reason" in e["details"] else e["details"]["verdict"]["refused"][-1]
            for e in AuditLog(audit_dir).get_events(event_type="approval.refused", flow_run_id=run_id)]


def _wait_paused_again(api: str, run_id: str, headers: dict | None = None) -> None:
    deadline = time.monotonic() + 60
    time.sleep(1.5)
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run_id}", headers=headers or {}).json()["state"]["type"]
        if state == "PAUSED":
            return
        time.sleep(0.3)
    raise AssertionError("the run did not go back to waiting")


def test_as_without_a_key_and_a_raw_rest_resume_do_not_approve_but_a_signed_cli_approval_does(
        prefect_server, tmp_path):
    bob_key, bob_pub = make_key(tmp_path, "bob")
    env, target, audit_dir = _workspace(tmp_path, {"approvers": ["bob"], "approver_keys": {"bob": bob_pub}},
                                        prefect_server.env())
    proc, run_id = _start_restore(env, target)

    named = _cli(env, "approve", run_id, "--as", "bob")  # the requester claiming to be bob
    assert named.returncode != 0 and "Traceback" not in named.stderr
    assert "is not signed" in named.stderr and "--key" in named.stderr

    raw = httpx.post(f"{prefect_server.api_url}/flow_runs/{run_id}/resume",
                     json={"run_input": {"approved": True, "approver": "bob", "reason": "trust me"}})
    assert raw.status_code in (200, 201) and raw.json()["status"] == "ACCEPT"  # the server takes it...
    _wait_paused_again(prefect_server.api_url, run_id)  # ...the run refuses it and waits again
    assert (target / "notes.md").read_text() == "unsaved edits\n"
    refusals = _refusals(audit_dir, run_id)
    assert len(refusals) == 2 and all("is not signed" in r for r in refusals)

    forged = _cli(env, "approve", run_id, "--as", "bob", "--key", str(make_key(tmp_path, "mallory")[0]))
    assert forged.returncode != 0 and "does not verify with the keys listed for bob" in forged.stderr

    ok = _cli(env, "approve", run_id, "--key", str(bob_key), "--reason", "checked")
    assert ok.returncode == 0, ok.stderr
    assert "as bob (signed with SHA256:" in ok.stdout
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert (target / "notes.md").read_text() == "version one\n"
    decided = AuditLog(audit_dir).get_events(event_type="approval.decided", flow_run_id=run_id)
    assert [e["user"] for e in decided] == ["bob"] and decided[0]["details"]["decision"]["signature"]


def test_config_default_key_signs_and_a_rejection_needs_a_signature_too(prefect_server, tmp_path):
    bob_key, bob_pub = make_key(tmp_path, "bob")
    env, target, audit_dir = _workspace(tmp_path, {"allow_self_approval": False, "approver_keys": {"bob": bob_pub}},
                                        prefect_server.env())
    proc, run_id = _start_restore(env, target)
    unsigned = _cli(env, "reject", run_id, "--as", "bob")
    assert unsigned.returncode != 0 and "is not signed" in unsigned.stderr
    cfg = Path(env["BACKUPFLOW_CONFIG"])
    cfg.write_text(cfg.read_text() + f"[approver]\nkey = {json.dumps(str(bob_key))}\n")
    signed = _cli(env, "reject", run_id, "--reason", "wrong snapshot")
    assert signed.returncode == 0, signed.stderr
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (target / "notes.md").read_text() == "unsaved edits\n"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A dedicated Prefect server that refuses every call without the shared credential."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-auth"),
                           extra_env={"PREFECT_SERVER_API_AUTH_STRING": "admin:s3cret-pass"}).start()
    yield server
    server.stop()


def test_ui_style_approval_counts_only_on_a_server_with_authentication_the_policy_trusts(auth_server, tmp_path):
    server_env = {**auth_server.env(), "PREFECT_API_AUTH_STRING": "admin:s3cret-pass"}
    env, target, audit_dir = _workspace(tmp_path, {"trust_server_authentication": True}, server_env)
    # trusting the server is a laxer rule than signatures: only the repository's policy can say it
    first_policy(env["BACKUPFLOW_REPO"], GuardianSettings(approvers=["bob"], trust_server_authentication=True))
    proc, run_id = _start_restore(env, target)
    url = f"{auth_server.api_url}/flow_runs/{run_id}/resume"
    answer = {"run_input": {"approved": True, "approver": "bob", "reason": "clicked in the UI"}}
    assert httpx.post(url, json=answer).status_code == 401  # nobody without the credential
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret-pass").decode()}
    _wait_paused_again(auth_server.api_url, run_id, auth)  # (the announcement can come before the state)
    reply = httpx.post(url, json=answer, headers=auth, timeout=60)
    assert reply.json().get("status") == "ACCEPT", (reply.status_code, reply.text)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert (target / "notes.md").read_text() == "version one\n"
    assert [e["user"] for e in AuditLog(audit_dir).get_events(event_type="approval.decided")] == ["bob"]
