"""The thin client: hand a command that runs a flow to the resident runner, or say it cannot.

``backupflow backup ...`` would otherwise import Prefect (about a second) and, without
PREFECT_API_URL, start a temporary Prefect server (several more) on every command. The
runner (``python -m deployments.runner``, started here on first use and never imported here)
has both ready; this module only connects to its Unix socket, passes the command line, the
folder, the environment and the terminal (stdin/stdout/stderr as file descriptors), forwards
Ctrl-C as a cancel, and exits with the command's code. Standard library only.

Read-only commands, ``--help``, ``--no-runner``, ``BACKUPFLOW_RUNNER=off`` and
``[runner] enabled = false`` in the config run in this process as before.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from flows.cli import runner_protocol as wire

FLOW_COMMANDS = frozenset({"backup", "restore", "verify", "forget", "prune", "repair", "archive", "cleanup"})
# Commands that need no Prefect and so never start a runner, but go to one that is up: `init`
# there leaves the key it made in the runner's memory, so the first backup skips scrypt.
WHEN_UP_COMMANDS = frozenset({"init"})
NO_RUNNER_FLAG = "--no-runner"
PASSWORD_FILE_FLAG = "--password-file"  # takes a value, may stand before the command (flows.cli.password_prompt)
# Never in the runner's own environment (/proc/PID/environ, for as long as it lives): each
# command gets its client's environment over the socket, into its own forked process only.
SECRET_ENV = ("BACKUPFLOW_PASSWORD",)
START_TIMEOUT = 180.0  # the first start imports Prefect and may start a Prefect server
GONE_EXIT_CODE = 9  # TransientError's code: running the command again is the remedy


class RunnerUnavailable(Exception):
    """The runner could not be started; the command runs in this process instead."""


class NotForThisClient(Exception):
    """This process has other groups or capabilities than the runner (setpriv, sudo -g, a
    container): it runs its command itself, with exactly its own rights."""


def _config_table(argv: list[str]) -> dict[str, Any]:
    """The config's ``[runner]`` table, read without pydantic (validated by storage.config)."""
    path = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    path = path or os.environ.get("BACKUPFLOW_CONFIG") or "config/config.toml"
    try:
        table = tomllib.loads(Path(path).read_text()).get("runner", {})
    except (OSError, ValueError):
        return {}  # a missing or broken file is reported by the command itself
    return table if isinstance(table, dict) else {}


def without_flag(argv: list[str]) -> list[str]:
    """The command line without ``--no-runner`` (it may stand anywhere before ``--``)."""
    end = argv.index("--") if "--" in argv else len(argv)
    return [a for a in argv[:end] if a != NO_RUNNER_FLAG] + argv[end:]


def command_of(argv: list[str]) -> str | None:
    return next((a for i, a in enumerate(argv) if not a.startswith("-")
                 and (i == 0 or argv[i - 1] != PASSWORD_FILE_FLAG)), None)


def wanted(argv: list[str]) -> bool:
    """Whether this command line goes to the runner (a WHEN_UP_COMMANDS one: if it runs)."""
    if command_of(argv) not in FLOW_COMMANDS | WHEN_UP_COMMANDS or NO_RUNNER_FLAG in argv or "--help" in argv:
        return False
    if os.environ.get("BACKUPFLOW_RUNNER", "").lower() in ("0", "off", "no", "false"):
        return False
    return _config_table(argv).get("enabled", True) is not False


def idle_minutes(argv: list[str]) -> float:
    value = os.environ.get("BACKUPFLOW_RUNNER_IDLE_MINUTES") or _config_table(argv).get("idle_minutes", 30)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 30.0


def connect() -> socket.socket | None:
    """A connection to a live runner, or None (no socket, or a stale one, which is removed)."""
    path = wire.runner_file("sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ECONNREFUSED:  # left by a runner that died: nobody listens
            path.unlink(missing_ok=True)
            wire.runner_file("pid").unlink(missing_ok=True)
        elif exc.errno not in (errno.ENOENT,):
            raise
        return None


def _spawn(argv: list[str], serve_args: list[str] | None = None) -> subprocess.Popen:
    log = open(wire.runner_file("log"), "ab")
    cmd = [sys.executable, "-m", "deployments.runner", "--idle-minutes", str(idle_minutes(argv))]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    return subprocess.Popen(cmd + (serve_args or []), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, cwd="/", close_fds=True, env=env)


def _wait_for_socket(proc: subprocess.Popen) -> socket.socket:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        sock = connect()
        if sock is not None:
            return sock
        if proc.poll() is not None:
            raise RunnerUnavailable(f"it exited with code {proc.returncode} (see {wire.runner_file('log')})")
        time.sleep(0.05)
    raise RunnerUnavailable(f"it did not answer within {START_TIMEOUT:g} s (see {wire.runner_file('log')})")


class NoRunner(Exception):
    """No runner is up, and this command does not start one (WHEN_UP_COMMANDS)."""


def ensure_runner(argv: list[str]) -> tuple[socket.socket, bool]:
    """(connection, whether this call started the runner). One client starts it; others wait."""
    sock = connect()
    if sock is not None:
        return sock, False
    if command_of(argv) in WHEN_UP_COMMANDS:
        raise NoRunner()
    with open(wire.runner_file("lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = connect()
        if sock is not None:
            return sock, False
        return _wait_for_socket(_spawn(argv)), True


def _request(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "version": wire.code_fingerprint(), **fields}


def retire(reply: dict[str, Any], stop: bool = False) -> None:
    """Make way for another runner (newer code, or ``serve``): the one that sent ``reply``
    finishes its commands and exits, leaving its local Prefect server to its successor;
    nobody connects to it again. With ``stop`` (`runner stop` after an upgrade) there is no
    successor: it stops as `runner stop` stops any runner, server included."""
    wire.runner_file("sock").unlink(missing_ok=True)
    wire.runner_file("pid").unlink(missing_ok=True)
    pid = reply.get("runner_pid")
    if isinstance(pid, int) and pid > 1:
        try:
            os.kill(pid, signal.SIGTERM if stop else signal.SIGUSR1)
        except ProcessLookupError:
            pass


def _open_run(argv: list[str]) -> tuple[socket.socket, dict[str, Any]]:
    for _ in range(3):
        sock, _started = ensure_runner(argv)
        request = _request("run", argv=argv, cwd=os.getcwd(), env=dict(os.environ))
        try:
            wire.send(sock, request, fds=[0, 1, 2])
        except BrokenPipeError:  # a refusal may be waiting: the runner answers before it reads
            pass
        reply = wire.receive(sock)
        if reply and reply.get("type") == "refused" and reply.get("reason") == "version":
            sock.close()
            retire(reply)
            continue
        if reply and reply.get("type") == "refused" and reply.get("reason") == "credentials":
            sock.close()
            raise NotForThisClient()
        if not reply or reply.get("type") != "started":
            sock.close()
            raise RunnerUnavailable(f"it answered {reply!r}")
        return sock, reply
    raise RunnerUnavailable("it kept answering with another version")


def follow(sock: socket.socket, started: dict[str, Any]) -> int:
    """Wait for the command's exit code; Ctrl-C here cancels it there. Never raises: the
    command has started, so it must not run a second time in this process."""
    pid = started.get("pid")

    def cancel(_signum, _frame):
        try:
            wire.send(sock, {"type": "cancel"})
        except OSError:
            pass

    previous = signal.signal(signal.SIGINT, cancel)
    try:
        while True:
            try:
                reply = wire.receive(sock)
            except (wire.ProtocolError, OSError):
                reply = None
            if reply is None:
                sys.stderr.write(f"backupflow: the backupflow runner process running this command (pid {pid}) "
                                 "ended before it finished; nothing that was already backed up was changed, "
                                 "run the command again.\n")
                return GONE_EXIT_CODE
            if reply.get("type") == "exit":
                code = reply.get("code")
                return code if isinstance(code, int) else 1
    finally:
        signal.signal(signal.SIGINT, previous)
        sock.close()


def delegate(argv: list[str]) -> int | None:
    """The exit code of the command run by the runner, or None to run it in this process."""
    if not wanted(argv) or not hasattr(socket, "send_fds"):
        return None
    try:
        sock, started = _open_run(argv)
    except (NotForThisClient, NoRunner):
        return None
    except (RunnerUnavailable, wire.ProtocolError, OSError) as exc:
        sys.stderr.write(f"backupflow: the backupflow runner is not available ({exc}); running in this process.\n")
        return None
    except KeyboardInterrupt:
        sys.stderr.write("backupflow: interrupted; nothing that was already backed up was changed.\n")
        return 130
    return follow(sock, started)


def control(kind: str) -> dict[str, Any] | None:
    """Ask the running runner for its ``status`` or to ``stop``; None when none runs. A runner
    with other code is told to retire and reported as not running (to ``stop``: stopped)."""
    sock = connect()
    if sock is None:
        return None
    try:
        sock.settimeout(30)
        wire.send(sock, _request(kind))
        reply = wire.receive(sock)
    except (OSError, wire.ProtocolError):
        return None
    finally:
        sock.close()
    if reply and reply.get("type") == "refused" and reply.get("reason") == "version":
        retire(reply, stop=kind == "stop")
        return {"type": "stopping" if kind == "stop" else "retired", "runner_pid": reply.get("runner_pid")}
    return reply


def wait_gone(pid: int, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.1)
    return False
