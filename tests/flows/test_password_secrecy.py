"""A repository password reaches the key files' scrypt and nothing else: not a flow-run
parameter or name, a log, an artifact, an event or anything else in the Prefect database, not
a process's command line, not the resident runner's environment. Workers (deployments, Python)
read it from a Prefect Secret block named in the config, inside the task; without any source a
run fails at once, naming where the password is looked for."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker

from flows import backup_flow
from flows.cli import runner_client
from storage import Repository
from storage.errors import PasswordRequired
from tests.flows.cli_process import cli_env, run, start, wait_for_approval

pytestmark = pytest.mark.prefect

PASSWORD = "PW-never-shown-8812"


def _tree(root: Path) -> Path:
    root.mkdir()
    for i in range(4):
        (root / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    return root


def _assert_nowhere_in_prefect(server, texts: list[str]) -> None:
    """Through the API (runs, logs, artifacts, events), then every byte of the server's database."""
    for text in texts:
        assert PASSWORD not in text
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        assert runs
        for r in runs:
            assert PASSWORD not in r.name + repr(r.parameters) + repr(r.state) + repr(r.tags)
        assert client.read_logs() and all(PASSWORD not in log.message for log in client.read_logs())
        for artifact in client.read_artifacts():
            assert PASSWORD not in repr(artifact.data) + str(artifact.description)
    body = {"filter": {"occurred": {"since": "2020-01-01T00:00:00Z"}}, "limit": 50}
    events = httpx.post(f"{server.api_url}/events/filter", json=body).json().get("events", [])
    assert PASSWORD not in repr(events)
    files = [p for p in Path(server.home).rglob("*") if p.is_file() and ".db" in p.name]
    assert files, "the Prefect server's database was not found"
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path


def _processes() -> dict[int, tuple[bytes, bytes]]:
    """pid -> (command line, environment) of this user's processes."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            out[int(entry.name)] = ((entry / "cmdline").read_bytes(), (entry / "environ").read_bytes())
        except OSError:
            continue
    return out


@pytest.fixture
def own_runtime(monkeypatch):
    """A runner of this test's own, so that it is started by a client that has the password."""
    runtime = tempfile.mkdtemp(prefix="bfp-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield runtime
    reply = runner_client.control("stop")
    if reply and isinstance(reply.get("runner_pid"), int):
        runner_client.wait_gone(reply["runner_pid"])
    shutil.rmtree(runtime, ignore_errors=True)


def test_the_password_is_in_no_process_title_runner_environment_or_prefect_record(prefect_server, tmp_path,
                                                                                    own_runtime):
    src = _tree(tmp_path / "src")
    repo = str(tmp_path / "repo")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_PASSWORD=PASSWORD, XDG_RUNTIME_DIR=own_runtime)
    env.pop("BACKUPFLOW_PASSWORD_FILE")
    outputs = [run(["backup", str(src), "-r", repo], env, tmp_path).ok()]  # starts the runner
    target = tmp_path / "work"
    target.mkdir()
    (target / "f1.txt").write_text("newer, not backed up\n")
    waiting = start(["restore", "latest", str(target), "-r", repo], env, tmp_path)  # pauses for approval
    try:
        run_id, seen = wait_for_approval(waiting, "the restore")
        # while a run is under way in the runner: no command line has the password, and no
        # environment but the client's own (where the user put it)
        runner = runner_client.control("status")
        assert runner and runner.get("runner_pid")
        procs = _processes()
        assert PASSWORD not in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        assert runner["runner_pid"] in procs and waiting.pid in procs
        for pid, (cmdline, environ) in procs.items():
            assert PASSWORD.encode() not in cmdline, pid
            if pid != waiting.pid:
                assert PASSWORD.encode() not in environ, (pid, cmdline)
        outputs.append(run(["reject", run_id, "--reason", "only looking", "--as", "bob"], env, tmp_path).ok())
        out, err = waiting.communicate(timeout=180)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode != 0 and (target / "f1.txt").read_text() == "newer, not backed up\n"
    outputs.append(run(["verify", "-r", repo, "--read-data"], env, tmp_path).ok())
    assert Repository.open(repo, password=PASSWORD).encrypted
    texts = [o.stdout + o.stderr for o in outputs] + [out + err + "".join(seen)]
    for path in (tmp_path / "audit").rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for path in Path(repo).rglob("*"):
        assert PASSWORD.encode() not in path.read_bytes() if path.is_file() else True, path
    _assert_nowhere_in_prefect(prefect_server, texts)


def test_a_worker_reads_the_password_from_a_secret_block_and_without_one_fails_at_once(prefect_server, tmp_path,
                                                                                        monkeypatch):
    src = _tree(tmp_path / "src")
    repo = str(tmp_path / "repo")
    Secret(value=PASSWORD).save("bf-test-repo-password", overwrite=True)
    config = tmp_path / "config.toml"
    config.write_text("[backup]\npassword_secret_block = 'bf-test-repo-password'\n")
    # as a worker runs a deployment: in a process with Prefect, no password anywhere but the block
    monkeypatch.delenv("BACKUPFLOW_PASSWORD_FILE")
    monkeypatch.setenv("BACKUPFLOW_CONFIG", str(config))
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    first = backup_flow(source=str(src), repo=repo)
    assert first["snapshot_id"] in Repository.open(repo, password=PASSWORD).snapshots.ids()
    # the CLI reads the same block (here for a read-only command, in its own process)
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=str(config))  # (os.environ has no password file)
    listed = run(["snapshots", "-r", repo, "--json"], env, tmp_path).json()["snapshots"]
    assert [s["id"] for s in listed] == [first["snapshot_id"]]

    config.write_text("")  # no source at all
    state = backup_flow(source=str(src), repo=repo, return_state=True)
    assert state.is_failed()
    with pytest.raises(PasswordRequired) as err:
        state.result()
    for source in ("--password-file", "BACKUPFLOW_PASSWORD_FILE", "BACKUPFLOW_PASSWORD", "password_command",
                   "password_secret_block"):
        assert source in err.value.message
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    failed = [log.message for log in logs if "Task run encountered an exception PasswordRequired" in log.message]
    assert len(failed) == 1 and not any("Retrying" in log.message for log in logs), "not retried: it fails at once"
    _assert_nowhere_in_prefect(prefect_server, [listed.__repr__()])
