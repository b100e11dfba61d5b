"""The policy that governs a repository lives in it (issue 10): the requester's config can make
it stricter, never laxer; changing it is a critical operation its approvers must sign; a
version written straight into the repository without their approval does not apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import Repository
from storage.audit import AuditLog
from storage.backend import open_backend
from storage.config import GuardianSettings
from storage.guardian import ApprovalRequest
from storage.guardian.stored_policy import change_operation, read_policy
from tests.approver_keys import first_policy, make_key, toml_value
from tests.flows.cli_process import wait_for_approval
from tests.suite_password import SUITE_ENV

pytestmark = pytest.mark.prefect

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


@pytest.fixture
def world(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.md").write_text("version one\n")
    repo = str(tmp_path / "repo")
    Repository.init(repo).backup(str(src))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPFLOW_", "PREFECT_API")) or k in SUITE_ENV}
    env.update(prefect_server.env(), BACKUPFLOW_REPO=repo, USER="alice")
    return tmp_path, repo, env


def config(tmp_path: Path, name: str, **guardian) -> Path:
    lines = ["[guardian]"] + [f"{k} = {toml_value(v)}" for k, v in guardian.items()]
    lines += ["[audit]", f"audit_path = {json.dumps(str(tmp_path / 'audit'))}"]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(env, *args, **kw):
    return subprocess.run([BACKUPFLOW, *args], env=env, capture_output=True, text=True, timeout=180, **kw)


def start(env, *args):
    proc = subprocess.Popen([BACKUPFLOW, *args], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, wait_for_approval(proc, args[0])[0]


def test_a_lax_config_from_the_requester_does_not_loosen_the_repository_policy(world):
    tmp_path, repo, env = world
    bob_key, bob_pub = make_key(tmp_path, "bob")
    first_policy(repo, GuardianSettings(require_approval=["medium", "high", "critical"], approvers=["bob"],
                                        approver_keys={"bob": [bob_pub]}, timeout_seconds=120))
    lax = config(tmp_path, "lax.toml", require_approval=[], timeout_seconds=60)
    env["BACKUPFLOW_CONFIG"] = str(lax)
    # a restore into a new folder is medium risk: the repository's policy asks bob
    proc, run_id = start(env, "restore", "latest", str(tmp_path / "new"))
    assert not (tmp_path / "new" / "notes.md").exists()
    mine = cli(env, "approve", run_id, "--as", "alice")
    assert mine.returncode != 0 and "alice is not an allowed approver" in mine.stderr
    ok = cli(env, "approve", run_id, "--key", str(bob_key))
    assert ok.returncode == 0, ok.stderr
    proc.communicate(timeout=120)
    assert proc.returncode == 0 and (tmp_path / "new" / "notes.md").read_text() == "version one\n"
    shown = json.loads(cli(env, "policy", "show", "--json").stdout)
    assert shown["version"] == 1 and shown["applied"]["require_approval"] == ["medium", "high", "critical"]
    assert shown["applied"]["timeout_seconds"] == 60  # stricter is taken from the local config


def test_without_a_stored_policy_the_defaults_hold_against_a_lax_config_and_config_is_honoured(world):
    tmp_path, repo, env = world
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.md").write_text("unsaved edits\n")
    env["BACKUPFLOW_CONFIG"] = str(config(tmp_path, "lax.toml", require_approval=[], timeout_seconds=60))
    proc, run_id = start(env, "restore", "latest", str(target))  # high risk: still asks
    assert cli(env, "reject", run_id, "--as", "alice", "--reason", "withdrawn").returncode == 0
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and (target / "notes.md").read_text() == "unsaved edits\n"
    # --config wins over BACKUPFLOW_CONFIG, for Guardian too: this one asks even for medium
    strict = config(tmp_path, "strict.toml", require_approval=["medium", "high", "critical"], timeout_seconds=60)
    proc, run_id = start(env, "restore", "latest", str(tmp_path / "new"), "--config", str(strict))
    assert cli(env, "reject", run_id, "--as", "alice", "--config", str(strict)).returncode == 0
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and not (tmp_path / "new" / "notes.md").exists()


def test_a_policy_change_needs_the_current_approvers_and_a_forged_version_does_not_apply(world):
    tmp_path, repo, env = world
    bob_key, bob_pub = make_key(tmp_path, "bob")
    current = GuardianSettings(approvers=["bob"], approver_keys={"bob": [bob_pub]}, timeout_seconds=120)
    first_policy(repo, current)
    env["BACKUPFLOW_CONFIG"] = str(config(tmp_path, "mine.toml", timeout_seconds=120))

    # the requester writes a lax version 2 straight into the repository
    backend = open_backend(repo)
    stored = read_policy(backend)
    lax = GuardianSettings(require_approval=[])
    operation = {**change_operation(repo, lax, stored), "requester": "alice"}
    request = ApprovalRequest.from_operation(operation, "alice", run_id="forged").to_dict()
    forged = {"version": 2, "previous": stored.hash, "policy": lax.model_dump(),
              "approval": {"request": request, "decisions": [{"approved": True, "approver": "bob"}]}}
    backend.save("policy/00000002-forged.json", json.dumps(forged).encode(), exclusive=True)
    shown = cli(env, "policy", "show", "--json")
    assert json.loads(shown.stdout)["version"] == 1
    assert "policy/00000002-forged.json was not applied" in json.loads(shown.stdout)["skipped"][0]

    new = tmp_path / "new-policy.toml"
    new.write_text("[guardian]\n" + "approvers = [\"bob\", \"carol\"]\ntimeout_seconds = 120\n"
                   + f"approver_keys = {toml_value({'bob': bob_pub})}\n")
    proc, run_id = start(env, "policy", "set", str(new))
    unsigned = cli(env, "approve", run_id, "--as", "bob")
    assert unsigned.returncode != 0 and "is not signed" in unsigned.stderr
    ok = cli(env, "approve", run_id, "--key", str(bob_key))
    assert ok.returncode == 0, ok.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Stored policy version 2, approved by bob" in out
    shown = json.loads(cli(env, "policy", "show", "--json").stdout)
    assert shown["version"] == 2 and shown["stored"]["approvers"] == ["bob", "carol"]
    events = AuditLog(tmp_path / "audit").get_events(event_type="policy")
    assert [e["type"] for e in events][-1] == "policy.completed"
