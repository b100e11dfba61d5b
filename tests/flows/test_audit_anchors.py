"""The audit trail against its own writer (issue 10): a log rewritten with recomputed hashes,
cut short or deleted passes the local hash chain, but not `backupflow audit --verify`, which
checks it against the hashes anchored in the Prefect server and mirrored into the repository."""

from __future__ import annotations

import getpass
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
from storage.audit.chain import GENESIS, canonical, event_hash
from storage.errors import IntegrityError
from tasks.audit_events import ANCHOR_EVENT, ANCHOR_RESOURCE
from tests.prefect_server import PrefectServer

pytestmark = pytest.mark.prefect

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


WRITE = """
import sys
from prefect.events.worker import EventsWorker
import tasks.audit_events  # registers the Prefect anchor, as every flow process does
from storage.audit import AuditLog, RepositoryMirror
from storage.backend import open_backend
log = AuditLog(sys.argv[1], mirror=RepositoryMirror(open_backend(sys.argv[2])))
for i in range(4):
    log.log_event("approval.requested", user="alice", details={"i": i})
    log.log_event("approval.refused", user="bob", details={"i": i}, outcome="refused")
EventsWorker.drain_all(timeout=30)
print(log.log_id)
"""


@pytest.fixture(scope="module")
def events_server(tmp_path_factory):
    """A Prefect server that stores events (its event persister is a service)."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-events"), services=True,
                           extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                                      "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false"}).start()
    yield server
    server.stop()


def stored_anchors(server: PrefectServer, log_id: str) -> int:
    body = {"filter": {"event": {"name": [ANCHOR_EVENT]}, "resource": {"id": [f"{ANCHOR_RESOURCE}{log_id}"]},
                       "occurred": {"since": "2020-01-01T00:00:00Z"}}, "limit": 50}
    return len(httpx.post(f"{server.api_url}/events/filter", json=body).json()["events"])


@pytest.fixture
def trail(events_server, tmp_path):
    """Eight events (four refused approvals among them) anchored in the server and the repository."""
    repo = str(tmp_path / "repo")
    Repository.init(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPFLOW_", "PREFECT_API"))}
    env.update(events_server.env())
    written = subprocess.run([sys.executable, "-c", WRITE, str(tmp_path / "audit"), repo], env=env,
                             capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert written.returncode == 0, written.stderr[-2000:]
    log_id = written.stdout.strip()
    deadline = time.monotonic() + 60
    while stored_anchors(events_server, log_id) < 8:  # stored a moment after they arrive
        assert time.monotonic() < deadline, "the Prefect server never stored the anchors"
        time.sleep(0.5)
    env.update(BACKUPFLOW_AUDIT_PATH=str(tmp_path / "audit"), BACKUPFLOW_REPO=repo)
    return AuditLog(tmp_path / "audit"), env


def verify(env, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([BACKUPFLOW, "audit", "--verify", *extra], env=env, capture_output=True, text=True,
                          timeout=120)


def rewrite(log: AuditLog, keep) -> None:
    """What a careful writer would do: edit, recompute every hash and the head, leave no seam."""
    events = [e for e in log.get_events() if keep(e)]
    prev = GENESIS
    lines: dict[Path, list[bytes]] = {}
    for event in events:
        if event["user"] == "bob":
            event["user"] = "alice"
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(event)
        path = log.directory / f"audit_{event['time'][:10]}.jsonl"
        lines.setdefault(path, []).append(canonical(event) + b"\n")
    for path in log.directory.glob("audit_*.jsonl"):
        path.write_bytes(b"".join(lines.get(path, [])))
    (log.directory / "audit.head").write_text(json.dumps({"hash": prev, "count": len(events)}))


def test_an_intact_log_is_checked_against_both_anchors(trail):
    log, env = trail
    ok = verify(env)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 8 events" in ok.stdout
    assert "8 in the Prefect server" in ok.stdout and "8 in the repository" in ok.stdout


def test_a_rewritten_log_with_recomputed_hashes_is_reported(trail):
    log, env = trail
    rewrite(log, keep=lambda e: e["type"] != "approval.refused")
    assert log.verify().ok  # the chain alone cannot tell
    bad = verify(env, "--json")
    assert bad.returncode == IntegrityError.exit_code
    report = json.loads(bad.stdout)
    assert not report["ok"] and report["events"] == 4
    anchored = [p["message"] for p in report["problems"] if "anchored in" in p["message"]]
    # the first event is untouched; every later one was deleted or re-chained
    assert len(anchored) == 7
    assert all("the Prefect server and the repository" in m for m in anchored)
    text = verify(env)
    assert text.returncode == IntegrityError.exit_code and "rewritten, truncated or deleted" in text.stderr


def test_a_truncated_log_is_reported_even_with_only_the_prefect_anchor(trail):
    log, env = trail
    events = log.get_events()
    rewrite(log, keep=lambda e: e["hash"] not in {x["hash"] for x in events[-2:]})
    env.pop("BACKUPFLOW_REPO")
    bad = verify(env)
    assert bad.returncode == IntegrityError.exit_code
    assert events[-1]["id"] in bad.stderr or events[-2]["id"] in bad.stderr


def test_a_wiped_log_is_not_intact_with_zero_events(trail):
    log, env = trail
    for path in log.directory.iterdir():
        path.unlink()
    bad = verify(env)
    assert bad.returncode == IntegrityError.exit_code
    assert "holds no events but 8 were anchored" in bad.stderr and "intact" not in bad.stdout


def test_an_encrypted_repository_carries_its_audit_trail_sealed(prefect_server, tmp_path):
    # Repositories are encrypted by default: the events mirrored into one are sealed like the
    # rest of it (the bucket shows no source, user or target), and still anchor the local log.
    from tests.flows.cli_process import cli_env, run

    src = tmp_path / "secret-project-src"
    src.mkdir()
    (src / "payroll.txt").write_text("salaries\n")
    repo = tmp_path / "repo"
    env = cli_env(prefect_server, tmp_path)
    run(["backup", str(src), "-r", str(repo)], env, tmp_path).ok()
    run(["backup", str(src), "-r", str(repo)], env, tmp_path).ok()
    mirrored = [p for p in (repo / "audit").rglob("*") if p.is_file()]
    assert len(mirrored) >= 3, "backup.started/completed of the second backup at least"
    for path in mirrored:
        data = path.read_bytes()
        assert b"secret-project-src" not in data and b"backup." not in data and getpass.getuser().encode() not in data
    out = run(["audit", "--verify", "--json", "-r", str(repo)], env, tmp_path).ok()
    report = json.loads(out.stdout)
    assert report["ok"] and any(c.endswith("in the repository") and not c.startswith("0 ")
                                for c in report["anchors_checked"]), report
