"""What the ``backupflow`` client and the resident runner agree on: where the socket is, which
code the runner runs, and how a message looks on the wire.

Standard library only: the client imports this before anything else, so a command that goes
to the runner never pays for Prefect, pydantic or typer.

Wire format: each message is a 4-byte big-endian length and that many bytes of UTF-8 JSON, at
most :data:`MAX_MESSAGE` bytes. The client's first message is a request (``run``, ``status``,
``stop`` or ``retire``) carrying its code fingerprint; a ``run`` carries the client's stdin,
stdout and stderr as file descriptors (SCM_RIGHTS) with it, so the run writes and prompts on
the client's own terminal or pipes exactly as an in-process run would. The runner answers
``started`` (with the pid of the process running the command), then ``exit`` with the code;
the client may send ``cancel`` at any time. Anything else is answered with ``refused``.

Files, per user, installation and set of rights (two checkouts never share a runner):
``<runtime dir>/runner-<key>.sock`` (0600, in a 0700 directory), ``.pid``, ``.lock``, ``.log``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

MAX_MESSAGE = 1 << 20  # a request is argv + cwd + environment: far below this
_HEADER = struct.Struct(">I")
PACKAGES = ("flows", "tasks", "storage", "deployments")
ROOT = Path(__file__).resolve().parents[2]  # the folder holding the packages above


class ProtocolError(Exception):
    """A message that is not a length-prefixed JSON object within the size limit."""


def data_dir() -> Path:
    """Where backupflow keeps per-user state (the local Prefect server's database, logs)."""
    explicit = os.environ.get("BACKUPFLOW_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "backupflow"


def runtime_dir() -> Path:
    """A 0700 folder for the socket: $BACKUPFLOW_RUNTIME_DIR, $XDG_RUNTIME_DIR/backupflow, or
    ``run`` under the data folder. Created on first use."""
    explicit = os.environ.get("BACKUPFLOW_RUNTIME_DIR")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(explicit) if explicit else Path(xdg) / "backupflow" if xdg else data_dir() / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def install_key() -> str:
    """Which runner this process may use: one per installation and per set of rights (uid,
    groups, capabilities), so a client started with fewer rights (setpriv, sudo -g) never runs
    its command with a runner's greater ones."""
    try:
        rights = [line for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith(("CapEff:", "CapBnd:", "Groups:"))]
    except OSError:
        rights = []
    who = f"{ROOT}\n{os.getuid()}:{os.getgid()}\n" + "\n".join(rights)
    return hashlib.sha256(who.encode()).hexdigest()[:12]


def runner_file(suffix: str) -> Path:
    """``runner-<key>.<suffix>`` in the runtime folder (sock, pid, lock, log)."""
    return runtime_dir() / f"runner-{install_key()}.{suffix}"


def code_fingerprint() -> str:
    """Changes whenever backupflow's code changes (an upgrade, an edit of an editable install),
    so a runner that has older code imported is replaced, never spoken to. Costs one stat per
    source file (~2 ms)."""
    h = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            st = path.stat()
            h.update(f"{path.relative_to(ROOT)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes is over the {MAX_MESSAGE}-byte limit")
    return _HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode(message)
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    sock.sendall(data)


def decode_length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"a message of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    return length


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("a message that is not JSON") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message without a type")
    return message


def _recv_exactly(sock: socket.socket, n: int, fds: list[int]) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk, got, _flags, _addr = socket.recv_fds(sock, n - len(buf), 8)
        fds.extend(got)
        if not chunk:
            if buf:
                raise ProtocolError("the connection closed in the middle of a message")
            return None
        buf += chunk
    return buf


def receive(sock: socket.socket, fds: list[int] | None = None) -> dict[str, Any] | None:
    """The next message, or None when the peer closed the connection between messages.
    File descriptors sent with it are appended to ``fds`` (closed when not wanted)."""
    got: list[int] = []
    try:
        header = _recv_exactly(sock, _HEADER.size, got)
        if header is None:
            return None
        body = _recv_exactly(sock, decode_length(header), got)
        if body is None:
            raise ProtocolError("the connection closed in the middle of a message")
        return decode(body)
    finally:
        if fds is not None:
            fds.extend(got)
        else:
            for fd in got:
                os.close(fd)
