"""The resident runner as users meet it: ``backupflow`` hands flow commands to one long-lived
process, whose output, exit codes, Ctrl-C and failures look exactly like an in-process run.

Each test has a runner of its own (its own runtime folder), stopped at the end."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from flows.cli import runner_client
from flows.cli import runner_protocol as wire
from tests.flows.cli_process import BACKUPFLOW, cli_env, run, start
from tests.suite_password import SUITE_ENV, open_repository


@pytest.fixture
def own_runner(monkeypatch, tmp_path):
    """A runtime and data folder of this test's own; the runner in it is stopped afterwards."""
    # a short folder: a Unix socket's path may not exceed 107 bytes, and pytest's can be long
    runtime = tempfile.mkdtemp(prefix="bfr-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield tmp_path
    reply = runner_client.control("stop")
    if reply and isinstance(reply.get("runner_pid"), int):
        assert runner_client.wait_gone(reply["runner_pid"]), "the runner did not stop"
    shutil.rmtree(runtime, ignore_errors=True)


def runner_pid() -> int | None:
    try:
        return json.loads(wire.runner_file("pid").read_text())["pid"]
    except (OSError, ValueError):
        return None


def _tree(root: Path, files: int, size: int, seed: int = 1) -> Path:
    root.mkdir()
    rng = random.Random(seed)
    for i in range(files):
        (root / f"f{i:02d}.bin").write_bytes(rng.randbytes(size))
    return root


def _packs(repo: Path) -> list[Path]:
    data = repo / "data"
    return [p for p in data.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")] if data.exists() else []


def _big_backup(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, Path, Path]:
    """A backup slow enough to be caught in the middle: 128 MiB, incompressible, 4 MiB packs."""
    src = _tree(tmp_path / "big", 16, 8 * 1024 * 1024)
    config = tmp_path / "small-packs.toml"
    config.write_text("[backup]\npack_size_mib = 4\nconnections = 1\n")
    repo = tmp_path / "repo"
    run(["init", "-r", str(repo), "--config", str(config)], env, tmp_path).ok()
    proc = start(["backup", str(src), "-r", str(repo), "--json"], env, tmp_path)
    deadline = time.monotonic() + 180
    while len(_packs(repo)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the backup ended (exit {proc.returncode}) before it could be caught"
    return proc, src, repo


def test_flow_commands_run_in_one_runner_with_the_same_output_and_exit_codes(own_runner, prefect_server, tmp_path):
    secret = "runner-test-secret-4f1c9a"  # travels in the environment only; never written anywhere
    env = cli_env(prefect_server, tmp_path, AWS_SECRET_ACCESS_KEY=secret)
    src = _tree(tmp_path / "src", 5, 10_000)
    repo = tmp_path / "repo"
    first = run(["backup", str(src), "-r", str(repo), "--json"], env, tmp_path).json()
    assert first["type"] == "full" and first["files"] == 5
    pid = runner_pid()
    assert pid and psutil.pid_exists(pid), "the first command should have started a runner"
    sock = wire.runner_file("sock")
    assert oct(sock.stat().st_mode & 0o777) == "0o600" and oct(sock.parent.stat().st_mode & 0o777) == "0o700"

    (src / "more.txt").write_text("more\n")
    plain = run(["backup", str(src), "-r", str(repo)], env, tmp_path).ok()
    assert plain.stdout.startswith("snapshot ") and "(incremental) saved: 6 files" in plain.stdout
    assert run(["verify", "--read-data", "-r", str(repo), "--json"], env, tmp_path).json()["ok"] is True
    assert runner_pid() == pid, "every command should have gone to the same runner"

    # failures: the same sentence and exit code as in this process
    for args in (["verify", "-r", str(tmp_path / "nowhere")], ["backup", str(tmp_path / "missing"), "-r", str(repo)],
                 ["restore", "nosuchsnapshot", str(tmp_path / "out"), "-r", str(repo)]):
        through = run(args, env, tmp_path)
        direct = run([*args, "--no-runner"], env, tmp_path)
        assert through.one_sentence_error() == direct.one_sentence_error()
        assert through.returncode == direct.returncode != 0
        assert through.stdout == direct.stdout

    status = json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)
    assert status["running"] is True and status["runner_pid"] == pid
    assert status["prefect_api_url"] == prefect_server.api_url
    assert secret not in wire.runner_file("log").read_text()


def test_the_runner_keeps_a_repository_key_so_the_next_command_derives_none(own_runner, prefect_server, tmp_path):
    """ssh-agent style: the key a command's password opened stays in the runner's memory, so the
    next command with that password skips scrypt; a wrong password is still refused and kept not."""
    env = cli_env(prefect_server, tmp_path)
    src = _tree(tmp_path / "src", 3, 1000)
    repo = str(tmp_path / "repo")
    run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()  # creates the repository's key file

    def status() -> dict:
        return json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)

    first = status()
    assert first["keys_held"] == 1 and first["key_derivations"] == 1
    (src / "new.txt").write_text("new\n")
    assert run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()["type"] == "incremental"
    assert run(["verify", "-r", repo, "--json"], env, tmp_path).json()["ok"] is True
    assert status()["key_derivations"] == 1, "a command with the same password should not derive the key again"

    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    refused = run(["backup", str(src), "-r", repo], {**env, "BACKUPFLOW_PASSWORD_FILE": str(wrong)}, tmp_path)
    assert refused.returncode == 15 and "password" in refused.one_sentence_error()
    after = status()
    assert after["keys_held"] == 1 and after["key_derivations"] == 2
    assert len(open_repository(repo).snapshots.all()) == 2


def test_init_leaves_its_key_with_a_running_runner_and_starts_none(own_runner, prefect_server, tmp_path):
    """`init` needs no Prefect: with no runner up it runs in its own process and starts none;
    with one up it runs there, so the key it made is kept and the first backup derives none."""
    env = cli_env(prefect_server, tmp_path)
    src = _tree(tmp_path / "src", 2, 1000)

    def status() -> dict:
        return json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)

    assert run(["init", "-r", str(tmp_path / "alone")], env, tmp_path).ok()
    assert status()["running"] is False and runner_pid() is None, "init must not start a runner"
    run(["backup", str(src), "-r", str(tmp_path / "warm"), "--json"], env, tmp_path).json()  # starts it
    before = status()["key_derivations"]
    repo = str(tmp_path / "repo")
    assert run(["init", "-r", repo], env, tmp_path).ok()
    assert status()["key_derivations"] == before + 1, "init in the runner makes the key there"
    assert run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()["type"] == "full"
    assert status()["key_derivations"] == before + 1, "the first backup after init should derive no key"
    assert len(open_repository(repo).snapshots.all()) == 1


def test_the_client_does_not_import_prefect(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    src = _tree(tmp_path / "src", 2, 1000)
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: sys.stderr.write('LOADED: ' + ' '.join(m for m in "
             "('prefect', 'typer', 'pydantic') if m in sys.modules) + '\\n'))\n"
             "from flows.cli import main\n"
             f"sys.argv = ['backupflow', 'backup', {str(src)!r}, '-r', {str(tmp_path / 'repo')!r}]\n"
             "main()\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "saved: 2 files" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "LOADED:", out.stderr


def test_two_clients_at_once(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    run(["backup", str(_tree(tmp_path / "warm", 1, 10)), "-r", str(tmp_path / "warm-repo")], env, tmp_path).ok()
    procs = [start(["backup", str(_tree(tmp_path / f"src{i}", 8, 512 * 1024, seed=i)), "-r", str(tmp_path / f"repo{i}"),
                    "--json"], env, tmp_path) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["files"] == 8
    for i in range(2):
        assert len(open_repository(str(tmp_path / f"repo{i}")).snapshots.all()) == 1


def test_ctrl_c_at_the_client_cancels_the_run_in_the_runner(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    proc, src, repo = _big_backup(tmp_path, env)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "backupflow: interrupted; nothing that was already backed up was changed."
    assert stdout == ""
    assert open_repository(str(repo)).snapshots.all() == []
    assert run(["verify", "-r", str(repo), "--json"], env, tmp_path).json()["ok"] is True
    assert run(["backup", str(src), "-r", str(repo), "--json"], env, tmp_path).json()["type"] == "full"


def test_runner_killed_mid_backup_ends_the_command_with_one_sentence(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    proc, src, repo = _big_backup(tmp_path, env)
    runner = psutil.Process(runner_pid())
    workers = runner.children()
    assert workers, "the runner should run the backup in a child of its own"
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    runner.send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == runner_client.GONE_EXIT_CODE, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("backupflow: the backupflow runner process") and \
        "run the command again" in lines[0], stderr
    assert open_repository(str(repo)).snapshots.all() == []

    # the dead runner left its socket behind: the next command starts a new one and works
    assert wire.runner_file("sock").exists()
    assert run(["verify", "--read-data", "-r", str(repo), "--json"], env, tmp_path).json()["ok"] is True
    assert runner_pid() not in (None, runner.pid)
    after = run(["backup", str(src), "-r", str(repo), "--json"], env, tmp_path).json()
    assert after["type"] == "full" and after["files"] == 16


def test_a_stale_socket_and_pid_file_are_replaced(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    path = wire.runner_file("sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed runner leaves
    wire.runner_file("pid").write_text(json.dumps({"pid": 999999, "version": "old"}))
    src = _tree(tmp_path / "src", 2, 100)
    assert run(["backup", str(src), "-r", str(tmp_path / "repo"), "--json"], env, tmp_path).json()["files"] == 2
    assert runner_pid() not in (None, 999999)


def test_a_runner_with_other_code_is_replaced_not_spoken_to(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    src = _tree(tmp_path / "src", 2, 100)
    run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    old = runner_pid()
    source = wire.ROOT / "deployments" / "__init__.py"  # content unchanged; its new mtime is an upgrade
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        (src / "new.txt").write_text("new\n")
        assert run(["backup", str(src), "-r", str(tmp_path / "repo"), "--json"], env, tmp_path).json()["files"] == 3
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert runner_pid() not in (None, old)
    assert runner_client.wait_gone(old), "the runner with the older code should have exited"


def test_the_runner_stops_itself_when_idle(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_RUNNER_IDLE_MINUTES="0.02")
    run(["backup", str(_tree(tmp_path / "src", 1, 100)), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    # it may be gone already: its log names it
    pid = int(re.search(r"runner (\d+): listening", wire.runner_file("log").read_text()).group(1))
    assert runner_client.wait_gone(pid, timeout=120)
    assert not wire.runner_file("sock").exists() and not wire.runner_file("pid").exists()


def _raw(message: bytes) -> dict | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(wire.runner_file("sock")))
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        return wire.receive(s)


def test_garbage_oversized_and_malformed_requests_are_refused_and_run_nothing(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    run(["backup", str(_tree(tmp_path / "src", 1, 100)), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    target = tmp_path / "must-not-exist"
    request = {"type": "run", "version": wire.code_fingerprint(), "argv": ["init", "-r", str(target)],
               "cwd": str(tmp_path), "env": env}
    cases = {
        "garbage": b"\x00\x00\x00\x05hello",
        "oversized": struct.pack(">I", wire.MAX_MESSAGE + 1) + b"{}",
        "not an object": struct.pack(">I", 6) + b"[1, 2]",
        "unknown type": wire.encode({"type": "format-disk", "version": wire.code_fingerprint()}),
        "run without a terminal": wire.encode(request),
        "truncated": wire.encode(request)[:-10],
    }
    for name, message in cases.items():
        reply = _raw(message)
        assert reply and reply["type"] == "refused" and reply["message"], (name, reply)
    assert not target.exists()
    assert psutil.pid_exists(runner_pid()), "bad requests must not take the runner down"


def test_a_peer_of_another_uid_is_refused(own_runner, prefect_server, tmp_path, monkeypatch):
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    runtime = Path(tempfile.mkdtemp(prefix="runner-uid-test-"))  # pytest's own folders are 0700
    os.chmod(runtime, 0o711)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    env = cli_env(prefect_server, tmp_path)
    run(["backup", str(_tree(tmp_path / "src", 1, 100)), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    sock = wire.runner_file("sock")
    # open the file permissions, so that only the runner's own check stands in the way
    os.chmod(sock.parent, 0o711)
    os.chmod(sock, 0o666)
    target = tmp_path / "must-not-exist"
    request = {"type": "run", "version": wire.code_fingerprint(), "argv": ["init", "-r", str(target)],
               "cwd": "/", "env": {}}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a client of another user: nobody
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(60)
                s.connect(str(sock))
                try:
                    wire.send(s, request, fds=[0, 1, 2])
                except BrokenPipeError:  # refused before the request was read
                    pass
                os.write(write, json.dumps(wire.receive(s)).encode())
        except BaseException as exc:
            os.write(write, json.dumps({"error": repr(exc)}).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    reply = json.loads(os.read(read, 65536))
    os.close(read)
    assert reply.get("type") == "refused" and reply.get("reason") == "uid", reply
    assert not target.exists()


def test_no_runner_flag_environment_and_config_run_in_process(own_runner, prefect_server, tmp_path):
    src = _tree(tmp_path / "src", 2, 100)
    off = tmp_path / "off.toml"
    off.write_text("[runner]\nenabled = false\n")
    cases = [(["--no-runner"], {}), ([], {"BACKUPFLOW_RUNNER": "off"}), (["--config", str(off)], {})]
    for i, (extra, more_env) in enumerate(cases):
        env = cli_env(prefect_server, tmp_path, **more_env)
        out = run(["backup", str(src), "-r", str(tmp_path / f"repo{i}"), *extra, "--json"], env, tmp_path).json()
        assert out["files"] == 2
    assert runner_pid() is None and not wire.runner_file("sock").exists()


def test_without_a_prefect_server_the_runner_starts_one_and_says_where_its_ui_is(own_runner, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "BACKUPFLOW_"))
           or k in SUITE_ENV}
    env["BACKUPFLOW_AUDIT_PATH"] = str(tmp_path / "audit")
    src = _tree(tmp_path / "src", 2, 100)
    # a refusal as the very first command (the server starts for it) stays one sentence
    typo = run(["backup", str(tmp_path / "no-such-dir"), "-r", str(tmp_path / "repo")], env, tmp_path, timeout=400)
    assert typo.returncode != 0 and typo.stderr.strip().count("\n") == 0, typo.stderr
    assert "no-such-dir" in typo.stderr and "local Prefect server" not in typo.stderr
    first = run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path, timeout=400).ok()
    said = [line for line in first.stderr.splitlines() if "local Prefect server" in line]
    assert len(said) == 1 and "http://127.0.0.1:" in said[0], first.stderr
    second = run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    assert "local Prefect server" not in second.stderr, "the UI address is said once"
    status = json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)
    assert status["ui_url"] in said[0]
    record = tmp_path / "data" / "backupflow" / "prefect" / "server.json"
    server = json.loads(record.read_text())
    assert psutil.pid_exists(server["pid"])

    # the server dies: the next command starts another and says where it is
    os.kill(server["pid"], signal.SIGKILL)
    assert runner_client.wait_gone(server["pid"])
    third = run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path, timeout=400).ok()
    assert "started a local Prefect server" in third.stderr, third.stderr
    server = json.loads(record.read_text())
    status = json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)
    assert status["ui_url"] == server["ui_url"] and status["ui_url"] in third.stderr
    stopped = run(["runner", "stop"], env, tmp_path).ok()
    assert "Stopped the backupflow runner" in stopped.stdout
    assert runner_client.wait_gone(server["pid"]), "runner stop should stop the local Prefect server too"
    assert runner_pid() is None

    # after an upgrade, `runner stop` speaks to a runner of older code: it stops, server and all
    run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path, timeout=400).ok()
    old, server = runner_pid(), json.loads(record.read_text())
    source = wire.ROOT / "deployments" / "__init__.py"  # content unchanged; its new mtime is an upgrade
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        stopped = run(["runner", "stop"], env, tmp_path).ok()
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "Stopped the backupflow runner" in stopped.stdout, stopped.stdout
    assert runner_client.wait_gone(old) and runner_client.wait_gone(server["pid"]), \
        "runner stop after an upgrade left the older runner's Prefect server running"


def _deployments_of(api_url: str, repo: str) -> list[str]:
    body = json.dumps({"deployments": {"name": {"any_": ["scheduled-backup", "weekly-verify", "weekly-prune"]}}})
    req = urllib.request.Request(f"{api_url}/deployments/filter", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        found = json.loads(response.read())
    return sorted(d["name"] for d in found if d["parameters"].get("repo") == repo)


def test_serve_runs_the_schedules_and_the_commands_and_stops_on_sigterm(own_runner, prefect_server, tmp_path):
    env = cli_env(prefect_server, tmp_path)
    src = _tree(tmp_path / "src", 2, 100)
    repo = str(tmp_path / "repo")
    run(["backup", str(src), "-r", repo], env, tmp_path).ok()
    idle = runner_pid()  # an idle runner makes way for the serving one
    proc = subprocess.Popen([BACKUPFLOW, "serve", "--source", str(src), "--repo", repo], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while _deployments_of(prefect_server.api_url, repo) != ["scheduled-backup", "weekly-prune", "weekly-verify"]:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve never registered its deployments"
            time.sleep(0.5)
        status = json.loads(run(["runner", "status", "--json"], env, tmp_path).ok().stdout)
        assert status["serving_schedules"] is True and status["runner_pid"] == proc.pid
        assert idle and runner_client.wait_gone(idle)
        assert run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()["files"] == 2
        assert runner_pid() == proc.pid, "commands go to the serving runner"
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "backupflow: serving the schedules scheduled-backup (" in stdout
    assert "Prefect UI: http://127.0.0.1:" in stdout
    assert "Traceback" not in stderr, stderr
    assert not wire.runner_file("sock").exists()
