"""`backupflow notify setup` against a Prefect server with its automation services on: a local
HTTP receiver (behind a custom-webhook notification block) must get a message for a failed
run, an approval waiting, a verify that found damage and a missed backup. Messages are waited
for (bounded): the server sends them from its services, a moment after the event."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.flows.cli_process import cli_env, run, start, wait_for_approval

pytestmark = pytest.mark.prefect


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait_for(self, needle: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if needle in message.get("subject", "") + message.get("body", ""):
                    return message
            time.sleep(0.5)
        raise AssertionError(f"no message with {needle!r} within {timeout}s; got: {self.messages}")


@pytest.fixture(scope="module")
def notified(panel_server, tmp_path_factory):
    receiver = Receiver()
    with temporary_settings(updates={PREFECT_API_URL: panel_server.api_url}):
        CustomWebhookNotificationBlock(name="backupflow-test", url=receiver.url,
                                       json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(
            "ops-hook", overwrite=True)
    work = tmp_path_factory.mktemp("notify")
    (work / "config.toml").write_text("[guardian]\ntimeout_seconds = 120\n")
    env = cli_env(panel_server, work, BACKUPFLOW_REPO=str(work / "repo"), BACKUPFLOW_CONFIG=str(work / "config.toml"))
    yield receiver, env, work
    receiver.http.shutdown()


def automations(server) -> list[dict]:
    found = httpx.post(f"{server.api_url}/automations/filter", json={}).json()
    return [a for a in found if a["name"].startswith("backupflow: ")]


def test_setup_creates_five_automations_and_a_rerun_updates_them(notified, panel_server):
    _, env, work = notified
    first = run(["notify", "setup", "--block", "ops-hook", "--missed-after", "20s", "--json"], env, work).json()
    assert set(first["automations"].values()) == {"created"} and len(first["automations"]) == 5
    again = run(["notify", "setup", "--block", "custom-webhook/ops-hook", "--missed-after", "20s"], env, work).ok()
    assert again.stdout.count("updated: backupflow: ") == 5
    found = {a["name"]: a for a in automations(panel_server)}
    assert sorted(found) == ["backupflow: approval waiting", "backupflow: missed backup",
                             "backupflow: run failed or crashed", "backupflow: unresponsive runs become Crashed",
                             "backupflow: verify found damage"]
    crash = found["backupflow: unresponsive runs become Crashed"]
    assert crash["trigger"]["posture"] == "Proactive" and crash["trigger"]["within"] == 540.0  # the default 9m
    assert crash["actions"][0]["type"] == "change-flow-run-state" and crash["actions"][0]["state"] == "CRASHED"
    bad = run(["notify", "setup", "--block", "ops-hook", "--crash-after", "soon"], env, work)
    assert "--crash-after 'soon' is not a duration" in bad.one_sentence_error() and bad.returncode == 2
    missing = run(["notify", "setup", "--block", "nobody"], env, work)
    assert "no notification block named 'nobody'" in missing.one_sentence_error() and missing.returncode == 3


def test_failures_waiting_approvals_damage_and_missed_backups_are_sent(notified):
    receiver, env, work = notified
    src = work / "src"
    src.mkdir()
    (src / "notes.md").write_text("version one\n" * 100)
    run(["backup", str(src), "--json"], env, work).json()
    failed = run(["restore", "0123abcd", str(work / "nowhere")], env, work)
    assert failed.returncode == 3  # no such snapshot: the run fails
    message = receiver.wait_for("ended Failed")
    assert message["subject"] == "backupflow: a run Failed" and "restore 0123abcd" in message["body"]
    # the automations are live now: this backup starts the missed-backup clock of its source
    run(["backup", str(src), "--json"], env, work).json()
    target = work / "target"
    target.mkdir()
    (target / "notes.md").write_text("unsaved\n")
    proc = start(["restore", "latest", str(target)], env, work)
    run_id, _ = wait_for_approval(proc, "restore")
    waiting = receiver.wait_for("waits for an approval")
    assert run_id in waiting["body"] and waiting["subject"].startswith("backupflow: approval needed for restore ")
    run(["reject", run_id, "--as", "bob", "--reason", "test"], env, work).ok()
    proc.communicate(timeout=120)

    pack = next(p for p in (work / "repo" / "data").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert run(["verify", "--read-data"], env, work).returncode == 6
    damaged = receiver.wait_for("A verify of ")
    assert str(work / "repo") in damaged["subject"] and "problem(s)" in damaged["body"]

    missed = receiver.wait_for("No successful backup for", timeout=180)
    assert missed["subject"] == "backupflow: missed backup" and str(src) in missed["body"]


def test_setup_refuses_a_bad_duration_in_one_sentence(notified):
    _, env, work = notified
    bad = run(["notify", "setup", "--block", "ops-hook", "--missed-after", "soon"], env, work)
    assert bad.returncode == 2 and "--missed-after 'soon' is not a duration" in bad.one_sentence_error()


def test_readme_documents_notify_setup():
    text = (Path(__file__).parents[2] / "README.md").read_text()
    assert "backupflow notify setup --block" in text


def test_the_missed_backup_window_follows_the_configured_backup_frequency(notified, panel_server):
    _, env, work = notified
    hourly = work / "hourly.toml"
    hourly.write_text('[backup]\nbackup_frequency = "hourly"\n')
    run(["notify", "setup", "--block", "ops-hook", "--config", str(hourly)], env, work).ok()
    missed = {a["name"]: a for a in automations(panel_server)}["backupflow: missed backup"]
    assert missed["trigger"]["within"] == 7200.0, "an hourly schedule allows 2 h without a backup"
    run(["notify", "setup", "--block", "ops-hook"], env, work).ok()  # the fixture's config: daily
    missed = {a["name"]: a for a in automations(panel_server)}["backupflow: missed backup"]
    assert missed["trigger"]["within"] == 26 * 3600.0
