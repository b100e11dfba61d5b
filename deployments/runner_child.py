"""One connection to the runner, served in a child forked from it (see deployments.runner).

Importing this module imports what a command needs (Prefect, the flows, the CLI); the runner
does so once, before it forks. A ``run`` request becomes the client's own process in all that
a command can see: its stdin/stdout/stderr (received as file descriptors), its folder, its
environment (cloud credentials included: they stay in this process's environment as they
would in the client's, and are never logged or sent anywhere), its Prefect settings. Then the
same typer app runs the command line. Ctrl-C at the client arrives as ``cancel`` and is
raised here as KeyboardInterrupt, exactly where a terminal's SIGINT would have been.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import sys
import threading
import traceback
from typing import Any

# What Prefect loads on a process's first flow run (engines, the run graph's renderer, anyio's
# asyncio backend): loaded once here instead of by every child (~60 ms a command).
import anyio._backends._asyncio  # noqa: F401
import prefect.flow_engine  # noqa: F401
import prefect.task_engine  # noqa: F401
import prefect.artifacts  # noqa: F401
import prefect.utilities.visualization  # noqa: F401
import pydantic
from prefect.context import refresh_global_settings_context

import flows
from deployments import local_server
from flows import cli
from flows.cli import flow_runner  # noqa: F401  (registers its exit hook)
from flows.cli import runner_protocol as wire
from flows.cli.app import EXIT_HOOKS, QUIET_PREFECT_ENV
from storage.crypto import keys
from tasks.approval_gate import LOCAL

REQUEST_TIMEOUT = 30.0  # a client sends its request as soon as it connects
MAX_ARGS = 1000
for _flow in flows.__all__:  # every flow loaded once in the runner, shared by every child
    getattr(flows, _flow)
cli.load_commands()  # the command modules (~35 ms a command otherwise)
cli.app_command()  # typer's click command, built once (~25 ms)


def _complete_models() -> None:
    """Pydantic builds the validators of Prefect's API models on first use (their forward
    references resolve late): ~0.06 s of every child's first run, here once for all of them."""
    pending = [pydantic.BaseModel]
    while pending:
        for model in pending.pop().__subclasses__():
            pending.append(model)
            if model.__module__.startswith(("prefect.client.schemas", "prefect.events.schemas", "prefect.artifacts")) \
                    and not model.__dict__.get("__pydantic_complete__", False):
                try:
                    model.model_rebuild()
                except pydantic.PydanticUserError:  # one that cannot be built yet is built where used, as before
                    pass


_complete_models()
_IMPORT_PREFECT_ENV = {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")}


def _problem(request: dict[str, Any], fds: list[int], version: str) -> tuple[str, str] | None:
    """Why this request is refused, or None."""
    if request.get("version") != version:
        return "version", "this runner runs other backupflow code"
    kind = request["type"]
    if kind in ("status", "stop"):
        return ("garbage", "a control request carries no file descriptors") if fds else None
    if kind != "run":
        return "garbage", f"unknown request type {kind!r}"
    argv, cwd, env = request.get("argv"), request.get("cwd"), request.get("env")
    if not (isinstance(argv, list) and len(argv) <= MAX_ARGS and all(isinstance(a, str) for a in argv)):
        return "garbage", "argv must be a list of strings"
    if not (isinstance(cwd, str) and os.path.isabs(cwd)):
        return "garbage", "cwd must be an absolute path"
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        return "garbage", "env must map strings to strings"
    if len(fds) != 3:
        return "garbage", "a run request carries stdin, stdout and stderr"
    return None


def serve_connection(conn: socket.socket, state) -> int:
    conn.settimeout(REQUEST_TIMEOUT)
    fds: list[int] = []
    request = None
    try:
        request = wire.receive(conn, fds)
        if request is None:
            return 0
        problem = _problem(request, fds, state.version)
    except (wire.ProtocolError, OSError) as exc:
        problem = ("garbage", f"the request could not be read: {exc}")
    if problem is not None:
        for fd in fds:
            os.close(fd)
        _send_quietly(conn, {"type": "refused", "reason": problem[0], "message": problem[1],
                             "version": state.version, "runner_pid": os.getppid()})
        return 2
    assert request is not None
    if request["type"] == "status":
        _send_quietly(conn, state.status())
        return 0
    if request["type"] == "stop":
        _send_quietly(conn, {"type": "stopping", "runner_pid": os.getppid()})
        os.kill(os.getppid(), signal.SIGTERM)
        return 0
    return run_command(conn, request, fds, state)


def _send_quietly(conn: socket.socket, message: dict[str, Any]) -> None:
    try:
        wire.send(conn, message)
    except OSError:
        pass


def _take_terminal(fds: list[int]) -> None:
    """The client's stdin, stdout and stderr become this process's 0, 1 and 2."""
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    encoding = sys.__stderr__.encoding if sys.__stderr__ else "utf-8"
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding=encoding,
                                  line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding=encoding,
                                  errors="backslashreplace", line_buffering=True)


def _take_environment(env: dict[str, str], state) -> str | None:
    """The client's environment; the runner's local Prefect server when it names none.
    Returns the sentence announcing the server if no command has said where it is yet."""
    os.environ.clear()
    os.environ.update(env)
    for key, value in QUIET_PREFECT_ENV.items():
        os.environ.setdefault(key, value)
    announce = None
    if not os.environ.get("PREFECT_API_URL"):
        server = state.server
        if server is None or not local_server.answers(server.api_url):  # none yet, or it died: (re)start
            server = local_server.ensure(state.data)
        os.environ.update(server.env())
        LOCAL.ask_at_terminal = True
        if not (local_server.home(state.data) / local_server.ANNOUNCED).exists():
            announce = (f"backupflow: started a local Prefect server for your runs; its UI is at {server.ui_url} "
                        "(`backupflow runner stop` stops it).")
    if {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")} != _IMPORT_PREFECT_ENV:
        refresh_global_settings_context()  # ~0.1 s; only when the client's Prefect settings differ
    return announce


class _Exit:
    """Sends the exit code once, then lets go of the client's terminal so that whoever reads
    the client's output sees it end, while this process drains its events to the server."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.done = threading.Event()

    def __call__(self, code) -> None:
        if self.done.is_set():
            return
        self.done.set()
        if isinstance(code, str):
            sys.stderr.write(code + "\n")
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        _send_quietly(self.conn, {"type": "exit", "code": 0 if code is None else int(code)})
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)

    def watch(self) -> None:
        """Ctrl-C at the client, or the client gone: interrupt the command as SIGINT would."""
        while True:
            try:
                message = wire.receive(self.conn)
            except (wire.ProtocolError, OSError):
                message = None
            if self.done.is_set():
                return
            if message is None or message.get("type") == "cancel":
                os.kill(os.getpid(), signal.SIGINT)
            if message is None:
                return


def run_command(conn: socket.socket, request: dict[str, Any], fds: list[int], state) -> int:
    conn.settimeout(None)
    _take_terminal(fds)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    report = _Exit(conn)
    try:
        announce = _take_environment(request["env"], state)
        os.chdir(request["cwd"])
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"backupflow: the runner could not take over this command ({exc}); "
                         "run it again with --no-runner.\n")
        report(2)
        return 2
    wire.send(conn, {"type": "started", "pid": os.getpid()})
    threading.Thread(target=report.watch, name="backupflow-cancel", daemon=True).start()
    finish = _Finish(report, announce, state)
    EXIT_HOOKS.insert(0, finish)
    sys.argv = ["backupflow", *request["argv"]]
    code = 1
    try:
        cli.run_in_process()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # what an in-process run would have printed
        traceback.print_exc()
    finish(code)
    return code


class _Finish:
    """The exit hook: says once where the local server's UI is, after the first command that
    succeeds (so a mistyped first command still ends in its one sentence and the next good one
    says it), then reports the exit code."""

    def __init__(self, report: _Exit, announce: str | None, state):
        self.report, self.announce, self.state = report, announce, state

    def __call__(self, code) -> None:
        if self.announce and code in (0, None) and not self.report.done.is_set():
            try:
                sys.stderr.write(self.announce + "\n")
                (local_server.home(self.state.data) / local_server.ANNOUNCED).touch()
            except OSError:
                pass
        hand_keys(self.state)  # first: the next command, started once this one has answered, finds them
        self.report(code)


def hand_keys(state) -> None:
    """Send the runner the repository keys this command opened (deployments.runner._take_keys),
    only through the pipe the runner made for this child, and close it."""
    fd, state.key_pipe = state.key_pipe, None
    if fd is None:
        return
    opened, derived = keys.opened_keks()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    message = {"derived": derived,
               "keys": [[b64(salt), n, r, p, b64(pw), b64(kek)] for (salt, n, r, p, pw), kek in opened]}
    try:
        data = json.dumps(message).encode()
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
    finally:
        os.close(fd)


def fork_schedules(args) -> int:
    """Serve the scheduled deployments in a child of the runner, with deployments.serve's own
    main (its messages and signal handling). Prefect's serve loop starts threads, which the
    forking parent must never have; the parent passes its SIGTERM on."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        from deployments import serve

        sys.argv = ["deployments.serve", "--repo", args.repo, *(["--source", args.source] if args.source else [])]
        serve.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)
