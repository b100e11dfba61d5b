"""The resident runner: one long-lived process per user and installation with Prefect and the
engine imported, running the commands ``backupflow`` hands it (flows.cli.runner_client).

    python -m deployments.runner [--idle-minutes 30] [--serve --source DIR --repo URL ...]

Started by the client on first use, or in the foreground by ``backupflow serve``. It listens
on a Unix socket (0600, in a 0700 folder; see flows.cli.runner_protocol) and refuses a peer of
another uid. Each connection is served by a child forked from this warm process: the child
takes the client's stdin/stdout/stderr, folder and environment, runs the same typer app as an
in-process command would, and reports the exit code. Forking keeps what is global in a process
(the environment, the current folder, Prefect's settings and clients, the progress reporter,
the Guardian's prompt) per command, lets two commands use both cores, and means a run that
crashes takes only its own command down. The parent never runs a flow and starts no thread, so
forking it is safe.

Without PREFECT_API_URL it starts (or finds) a local Prefect server (deployments.local_server).
It stops after ``--idle-minutes`` without a command, unless it serves schedules; SIGTERM or
SIGINT (``backupflow runner stop``) cancels the commands in flight as Ctrl-C would, stops the
local server it uses and exits; SIGUSR1 (a client with newer code) makes it stop accepting,
let its commands finish and exit, leaving the server to the runner that replaces it.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from flows.cli import runner_protocol as wire
from deployments import local_server
from deployments.definition import scheduled_jobs
from storage.config import load_settings
from storage.crypto import keys


@dataclass
class State:
    version: str
    data: Path
    idle_seconds: float
    server: local_server.LocalServer | None
    serving: bool = False
    started: float = field(default_factory=time.time)
    children: dict[int, str] = field(default_factory=dict)  # pid -> what it serves
    connections: int = 0
    stopping: str | None = None  # "stop" or "retire"
    last_activity: float = field(default_factory=time.monotonic)
    schedule_pid: int | None = None
    exit_code: int = 0
    key_pipes: dict[int, bytearray] = field(default_factory=dict)  # read end of a child's -> what came
    key_pipe: int | None = None  # in a child: the write end to the runner
    key_derivations: int = 0  # scrypt runs in the commands served so far

    def status(self) -> dict:
        # the recorded one: a command may have restarted the server the runner started
        server = (local_server.recorded(self.data) or self.server) if self.server else None
        return {"type": "status", "runner_pid": os.getppid(), "version": self.version,
                "started": self.started, "serving_schedules": self.serving,
                "commands_running": sum(1 for what in self.children.values() if what == "connection"),
                "keys_held": len(keys.opened_keks()[0]),
                "key_derivations": self.key_derivations,
                "idle_minutes": self.idle_seconds / 60,
                "prefect_api_url": server.api_url if server else os.environ.get("PREFECT_API_URL"),
                "ui_url": server.ui_url if server else None}


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the connected process, from the kernel (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


def capabilities(pid: int | str) -> tuple[str, ...]:
    """The effective and bounding capability sets: a client started with fewer rights than the
    runner (setpriv, a container) must not get the runner's."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return ("unknown",)
    return tuple(line for line in lines if line.startswith(("CapEff:", "CapBnd:", "Groups:")))


def _refusal(conn: socket.socket) -> dict | None:
    pid, uid, gid = peer_credentials(conn)
    if uid != os.getuid():
        return {"type": "refused", "reason": "uid", "message": "this runner serves only the user who started it"}
    if gid != os.getgid() or capabilities(pid) != capabilities("self"):
        return {"type": "refused", "reason": "credentials",
                "message": "this client has other groups or capabilities than the runner; it runs in its own process"}
    return None


def _bind(path: Path) -> tuple[socket.socket, int]:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock, path.stat().st_ino


def _ours(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except OSError:
        return False


def _fork_connection(conn: socket.socket, listener: socket.socket, state: State) -> None:
    # The child hands back the repository keys its command opened (see _take_keys).
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            listener.close()
            os.close(read_end)
            for fd in state.key_pipes:
                os.close(fd)
            state.key_pipes.clear()
            state.key_pipe = write_end
            # Imported here, in the child only: it reads this process's modules, already loaded.
            from deployments import runner_child
            code = runner_child.serve_connection(conn, state)
        finally:
            os._exit(code)
    os.close(write_end)
    os.set_blocking(read_end, False)
    state.key_pipes[read_end] = bytearray()
    state.children[pid] = "connection"
    state.connections += 1
    conn.close()


def _take_keys(fd: int, state: State) -> None:
    """Read what a child sent on its key pipe; at its end, keep the keys in this process's
    memory (as ssh-agent does: never on disk, in a log or on the Prefect server), so the
    commands forked next inherit them and skip scrypt (~0.07-0.1 s each). Each is bound to its
    key file's salt and the password's hash: a wrong or changed password is still refused.
    They go when the runner stops or idles out."""
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return  # the rest comes later
        if not data:
            break
        state.key_pipes[fd] += data
    os.close(fd)
    body = bytes(state.key_pipes.pop(fd))
    try:
        message = json.loads(body) if body else {}
        entries = [((base64.b64decode(salt), int(n), int(r), int(p), base64.b64decode(pw)), base64.b64decode(kek))
                   for salt, n, r, p, pw, kek in message.get("keys", [])]
        state.key_derivations += int(message.get("derived", 0))
    except (ValueError, TypeError, AttributeError):
        return  # a child that died while writing: its command's keys are derived again next time
    keys.remember_keks(entries)


def _accept(listener: socket.socket, state: State) -> None:
    conn, _ = listener.accept()
    state.last_activity = time.monotonic()
    refusal = _refusal(conn)
    if refusal is not None:
        try:
            wire.send(conn, refusal)
        except OSError:
            pass
        conn.close()
        return
    _fork_connection(conn, listener, state)


def _reap(state: State) -> None:
    while state.children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            state.children.clear()
            return
        if pid == 0:
            return
        if state.children.pop(pid, None) is not None:
            state.last_activity = time.monotonic()
        if pid == state.schedule_pid:  # serving ended (its own error, or a stop): so does the runner
            state.schedule_pid = None
            state.exit_code = os.waitstatus_to_exitcode(status) if not state.stopping else 0
            state.stopping = state.stopping or "stop"


def _idle(state: State) -> bool:
    busy = any(what == "connection" for what in state.children.values())
    return (not state.serving and not busy and state.idle_seconds > 0
            and time.monotonic() - state.last_activity > state.idle_seconds)


def _shutdown(state: State) -> None:
    """Cancel the commands in flight as Ctrl-C would (they report it to their clients)."""
    for pid, what in list(state.children.items()):
        try:
            os.kill(pid, signal.SIGTERM if what == "schedules" else signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 60
    while state.children and time.monotonic() < deadline:
        _reap(state)
        time.sleep(0.1)
    for pid in list(state.children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def loop(listener: socket.socket, path: Path, inode: int, state: State) -> None:
    while True:
        _reap(state)
        if state.stopping or _idle(state):
            break
        ready, _, _ = select.select([listener, *state.key_pipes], [], [], 1.0)
        for fd in ready:
            if fd in state.key_pipes:
                _take_keys(fd, state)
        if listener in ready:
            try:
                _accept(listener, state)
            except OSError as exc:
                print(f"runner: a connection failed: {exc}", file=sys.stderr, flush=True)
    listener.close()
    if _ours(path, inode):
        path.unlink(missing_ok=True)
        wire.runner_file("pid").unlink(missing_ok=True)
    if state.stopping == "retire":
        while state.children:  # the commands of older code finish; the server stays for the next runner
            _reap(state)
            time.sleep(0.2)
        return
    _shutdown(state)
    local_server.stop(state.data)  # also one a command started because the runner had none


def _on_signal(state: State):
    def handler(signum, _frame):
        state.stopping = "retire" if signum == signal.SIGUSR1 else (state.stopping or "stop")
    return handler


def _prepare_server(data: Path) -> tuple[local_server.LocalServer | None, object]:
    """Without PREFECT_API_URL: the local server's address, in the environment before Prefect
    is imported (Prefect reads its settings once, at import)."""
    if os.environ.get("PREFECT_API_URL"):
        return None, None
    server = local_server.recorded(data)
    proc = None
    if server is None or not local_server.answers(server.api_url):
        if server is not None:
            local_server.stop(data)
        server, proc = local_server.launch(data)
    os.environ.update(server.env())
    return server, proc


def _warm_up() -> None:
    """Import everything a command needs, then freeze it: every child shares these pages, and
    the collector never walks them again."""
    from flows.cli.app import QUIET_PREFECT_ENV
    for key, value in QUIET_PREFECT_ENV.items():
        os.environ.setdefault(key, value)
    from deployments import runner_child  # noqa: F401  (Prefect, the flows, the CLI)
    gc.collect()
    gc.freeze()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deployments.runner", description=__doc__.splitlines()[0])
    p.add_argument("--idle-minutes", type=float, default=30.0,
                   help="Stop after this long without a command (0: never).")
    p.add_argument("--serve", action="store_true", help="Also serve the scheduled deployments (never idles out).")
    p.add_argument("--source")
    p.add_argument("--repo", default=os.environ.get("BACKUPFLOW_REPO"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    data = wire.data_dir()
    state = State(wire.code_fingerprint(), data, args.idle_minutes * 60, None, serving=args.serve)
    state.server, proc = _prepare_server(data)
    _warm_up()
    if state.server is not None:
        local_server.wait(state.server, proc, data)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, _on_signal(state))
    if args.serve:
        from deployments import runner_child
        state.schedule_pid = runner_child.fork_schedules(args)
        state.children[state.schedule_pid] = "schedules"
    path = wire.runner_file("sock")
    listener, inode = _bind(path)
    wire.runner_file("pid").write_text(json.dumps({"pid": os.getpid(), "version": state.version,
                                                   "serving_schedules": args.serve}))
    if not args.serve:  # to the runner's log (the foreground one says it below, for people)
        print(f"runner {os.getpid()}: listening on {path}"
              + (f"; local Prefect server {state.server.ui_url}" if state.server else ""), file=sys.stderr, flush=True)
    else:
        ui = state.server.ui_url if state.server else os.environ.get("PREFECT_UI_URL") or \
            os.environ["PREFECT_API_URL"].removesuffix("/").removesuffix("/api")
        jobs = ", ".join(f"{job.name} ({job.cron})" for job in scheduled_jobs(load_settings().backup))
        jobs += " and the panel's actions"
        print(f"backupflow: serving the schedules {jobs} (UTC) "
              f"of {args.source or 'no source'} into {args.repo}; Prefect UI: {ui}. Ctrl-C or SIGTERM stops it.",
              flush=True)
    loop(listener, path, inode, state)
    return state.exit_code


if __name__ == "__main__":
    sys.exit(main())
