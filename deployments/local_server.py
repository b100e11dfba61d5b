"""A local Prefect server on demand, for users who have not set PREFECT_API_URL.

The runner starts (or finds) one ``prefect server start`` on 127.0.0.1, on a free port, with
its SQLite database and log under ``<data dir>/prefect`` (see flows.cli.runner_protocol), and
keeps it: runs, reports and approvals then outlive each command, and its UI shows them.
``server.json`` beside the database says which process and port it is, so a later runner
finds it; a record whose process is gone or does not answer is replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 150.0


@dataclass
class LocalServer:
    pid: int
    api_url: str
    ui_url: str
    started_now: bool = False

    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api_url, "PREFECT_UI_URL": self.ui_url, **CLIENT_ENV}


# How a command talks to this server, which is this installation's own Prefect (so the same
# version) with CSRF protection off (set so in :func:`launch`): the client's per-process
# version handshake and its CSRF token fetch (one per client) are two to six requests of a
# command that need not be made.
CLIENT_ENV = {"PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false", "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false"}


def home(data: Path) -> Path:
    path = data / "prefect"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(api_url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _is_prefect_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"server" in cmdline and any(b"prefect" in part for part in cmdline)


def recorded(data: Path) -> LocalServer | None:
    """The server this data folder's record names, if that process is still a Prefect server."""
    try:
        info = json.loads((home(data) / "server.json").read_text())
        server = LocalServer(int(info["pid"]), str(info["api_url"]), str(info["ui_url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if _is_prefect_server(server.pid) else None


# Present once a command has told its user where this server's UI is (see runner_child).
ANNOUNCED = "announced"


def launch(data: Path) -> tuple[LocalServer, subprocess.Popen]:
    """Start a server; returns before it answers (see :func:`wait`)."""
    where = home(data)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(where), "PREFECT_UI_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    log = open(where / "server.log", "ab")
    proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, cwd=str(where))
    _yield_to_commands(proc.pid)
    server = LocalServer(proc.pid, api, f"http://127.0.0.1:{port}", started_now=True)
    (where / "server.json").write_text(json.dumps({"pid": proc.pid, "api_url": api, "ui_url": server.ui_url}))
    (where / ANNOUNCED).unlink(missing_ok=True)
    return server, proc


NICENESS = 10


def _yield_to_commands(pid: int) -> None:
    """Run the server at a lower priority than the commands it serves. A backup keeps both
    cores busy while the server records the run's events and logs, which nobody waits for;
    at normal priority that work took 0.3-0.5 s of CPU from a first backup of 1 GiB. When
    the command does wait on the server (starting and ending the run), the cores are free.
    Set right after the exec, before the server starts a thread, so all of them inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS))
    except OSError:
        pass  # a platform that refuses it keeps the normal priority


def wait(server: LocalServer, proc: subprocess.Popen | None, data: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(server.api_url, timeout=2):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"the local Prefect server did not start; see {home(data) / 'server.log'}")
        time.sleep(0.2)


def ensure(data: Path) -> LocalServer:
    """The running local server of this data folder, started now if there is none."""
    with open(home(data) / "server.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = recorded(data)
        if server is not None and answers(server.api_url):
            return server
        if server is not None:
            stop(data)
        server, proc = launch(data)
        wait(server, proc, data)
        return server


def stop(data: Path) -> bool:
    """Stop the recorded server (SIGTERM, then SIGKILL after 20 s); True if one was running."""
    server = recorded(data)
    (home(data) / "server.json").unlink(missing_ok=True)
    if server is None:
        return False
    for sig, patience in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, sig)  # the server and the workers it started
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and _is_prefect_server(server.pid):
            time.sleep(0.1)
        if not _is_prefect_server(server.pid):
            return True
    return True
