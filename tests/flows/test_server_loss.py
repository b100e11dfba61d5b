"""The Prefect server going away (issue 9, part 5): the engine's outcome is the truth.

Each test starts a Prefect server of its own (tests/prefect_server.py) and kills it at one
point of a command: before it, during a backup's upload, right after the snapshot is
committed, while a restore waits for approval. The command must end within seconds of the
loss (the bound is generous for a loaded machine; it took 71-160 s before) with one sentence
about the server and the exit code of what the engine did; the audit log says what happened.
A CLI killed in the middle leaves a run that the next command marks Crashed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from prefect import get_client

from flows.crashed_runs import _dead_process
from flows.runtime import process_start
from storage.errors import ServerUnreachable
from tests.flows.cli_process import cli_env, run, start
from tests.prefect_server import PrefectServer
from tests.suite_password import open_repository

LOSS_BOUND = 60  # seconds from the server's death to the command's end (it was 71-160 s)


@pytest.fixture
def server(tmp_path):
    srv = PrefectServer(tmp_path / "prefect-home").start()
    yield srv
    _kill(srv)


def _kill(srv: PrefectServer) -> None:
    if srv.proc and srv.proc.poll() is None:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()


def _source(root: Path, mib: int) -> Path:
    root.mkdir()
    rng = random.Random(3)
    for i in range(mib // 8):
        (root / f"blob{i}.bin").write_bytes(rng.randbytes(8 * 1024 * 1024))
    (root / "note.txt").write_text("note\n")
    return root


def _events(work: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((work / "audit").glob("*.jsonl")) for line in f.read_text().splitlines()]


def _wait(condition, what: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the command ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


class _Stderr:
    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True).start()


def _finish(proc: subprocess.Popen, err: _Stderr, killed_at: float) -> tuple[int, str, str, float]:
    out = proc.stdout.read()
    code = proc.wait(timeout=LOSS_BOUND * 3)
    took = time.monotonic() - killed_at
    time.sleep(0.2)
    return code, out, "".join(err.lines), took


def _server_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "httpx" not in stderr, stderr
    # (the indented lines are the approval announcement: run link, approve and reject commands)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("  ")]
    assert all(line.startswith("backupflow: ") for line in lines), stderr
    return [line for line in lines if "Prefect server" in line]


def test_a_server_that_is_down_before_the_run_is_one_sentence_in_seconds(server, tmp_path):
    src = _source(tmp_path / "src", 8)
    env = cli_env(server, tmp_path)
    _kill(server)
    for extra in ([], ["--no-runner"]):
        started = time.monotonic()
        result = run(["backup", str(src), "-r", str(tmp_path / "repo"), *extra], env, tmp_path)
        took = time.monotonic() - started
        line = result.one_sentence_error()
        assert result.returncode == ServerUnreachable.exit_code
        assert f"The Prefect server at {server.api_url} (PREFECT_API_URL) does not answer" in line
        assert "unset PREFECT_API_URL" in line and took < LOSS_BOUND, took
    assert not (tmp_path / "repo" / "snapshots").exists() or not any((tmp_path / "repo" / "snapshots").iterdir())
    assert not any(e["type"] == "backup.completed" for e in _events(tmp_path))


@pytest.mark.parametrize("when, runner", [("uploading", []), ("committed", ["--no-runner"])])
def test_a_backup_whose_server_dies_reports_its_snapshot(server, tmp_path, when, runner):
    src = _source(tmp_path / "src", 96)
    repo = tmp_path / "repo"
    env = cli_env(server, tmp_path)
    proc = start(["backup", str(src), "-r", str(repo), "--upload-limit", "24MiB/s", *runner], env, tmp_path)
    err = _Stderr(proc)
    if when == "uploading":
        _wait(lambda: any(e["type"] == "backup.started" for e in _events(tmp_path)) if (tmp_path / "audit").exists()
              else False, "the backup start", proc)
        time.sleep(1)
    else:
        snaps = repo / "snapshots"
        _wait(lambda: snaps.exists() and any(p for p in snaps.rglob("*") if p.is_file()), "the commit", proc)
    _kill(server)
    code, out, stderr, took = _finish(proc, err, time.monotonic())

    committed = open_repository(str(repo)).snapshots.all()
    assert len(committed) == 1, "the engine's work went on without the server"
    snap = committed[0].id
    assert code == 0, (code, stderr)
    assert f"snapshot {snap[:8]} (full) saved" in out
    about_server = _server_lines(stderr)
    assert len(about_server) == 1 and "the backup itself completed" in about_server[0], stderr
    assert took < LOSS_BOUND, f"{took:.0f} s after the server died"
    done = [e for e in _events(tmp_path) if e["type"].startswith("backup.") and e["type"] != "backup.started"]
    assert [e["type"] for e in done] == ["backup.completed"], done
    assert done[0]["details"]["snapshot"] == snap


def test_a_restore_waiting_for_approval_whose_server_dies_changes_nothing(server, tmp_path):
    src = _source(tmp_path / "src", 8)
    repo = tmp_path / "repo"
    env = cli_env(server, tmp_path)
    run(["backup", str(src), "-r", str(repo), "--no-runner"], env, tmp_path).ok()
    target = tmp_path / "target"
    target.mkdir()
    (target / "note.txt").write_text("mine\n")  # over an existing file: high risk, waits for approval
    proc = start(["restore", "latest", str(target), "-r", str(repo)], env, tmp_path)
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while not any("Waiting for approval" in line for line in seen):
        line = proc.stderr.readline()
        assert line and time.monotonic() < deadline, "".join(seen)
        seen.append(line)
    err = _Stderr(proc)
    _kill(server)
    code, _out, stderr, took = _finish(proc, err, time.monotonic())
    assert code == ServerUnreachable.exit_code, (code, stderr)
    about_server = _server_lines(stderr)
    assert len(about_server) == 1 and "changed nothing" in about_server[0], stderr
    assert took < LOSS_BOUND, f"{took:.0f} s after the server died"
    assert sorted(p.name for p in target.iterdir()) == ["note.txt"] and (target / "note.txt").read_text() == "mine\n"
    failed = [e for e in _events(tmp_path) if e["type"] == "restore.failed"]
    assert len(failed) == 1 and "Prefect server" in failed[0]["details"]["error"], failed


def test_a_killed_backup_run_is_marked_crashed_by_the_next_command(prefect_server, tmp_path):
    src = _source(tmp_path / "src", 64)
    repo = tmp_path / "repo"
    env = cli_env(prefect_server, tmp_path)
    # --no-runner: the process killed is the one running the flow
    proc = start(["backup", str(src), "-r", str(repo), "--upload-limit", "16MiB/s", "--no-runner"], env, tmp_path)
    _wait(lambda: (tmp_path / "audit").exists() and any(e["type"] == "backup.started" for e in _events(tmp_path)),
          "the backup start", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = next(e["flow_run_id"] for e in _events(tmp_path) if e["type"] == "backup.started")
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.type.value == "RUNNING"

    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_text("a")
    run(["backup", str(small), "-r", str(tmp_path / "other")], env, tmp_path).ok()
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    assert state.type.value == "CRASHED", state
    assert f"pid {proc.pid}" in state.message


def test_a_reused_pid_is_not_taken_for_the_process_that_ran_the_run(tmp_path):
    me = os.getpid()
    assert _dead_process([f"backupflow-process:{me}:{process_start(me)}"]) is None
    assert _dead_process([f"backupflow-process:{me}:1"]) == f"pid {me}"  # same pid, another start time
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _dead_process([f"backupflow-process:{gone.pid}:0"]) == f"pid {gone.pid}"
    assert _dead_process(["nightly"]) is None  # not a run of a backupflow process


def test_a_restore_killed_while_waiting_for_approval_is_crashed_not_pending(prefect_server, tmp_path):
    src = _source(tmp_path / "src", 8)
    repo = tmp_path / "repo"
    env = cli_env(prefect_server, tmp_path)
    run(["backup", str(src), "-r", str(repo), "--no-runner"], env, tmp_path).ok()
    target = tmp_path / "target"
    target.mkdir()
    (target / "note.txt").write_text("mine\n")
    proc = start(["restore", "latest", str(target), "-r", str(repo), "--no-runner"], env, tmp_path)
    seen: list[str] = []
    while not any("Waiting for approval" in line for line in seen):
        line = proc.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
    run_id = next(line.split()[-1] for line in seen if "Waiting for approval of flow run" in line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = json.loads(run(["pending", "--json"], env, tmp_path).ok().stdout)["pending"]
    assert run_id not in [r["run_id"] for r in listed]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.type.value == "CRASHED"
    assert (target / "note.txt").read_text() == "mine\n"
