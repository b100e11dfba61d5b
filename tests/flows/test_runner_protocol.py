"""The client's side of the runner, without a runner: which command lines go to it, and the wire
format's limits (a peer that sends garbage gets an error, never a half-read message)."""

from __future__ import annotations

import socket
import struct

import pytest

from flows.cli import runner_client
from flows.cli import runner_protocol as wire


@pytest.mark.parametrize("argv, goes", [
    (["backup", "src"], True),
    (["--no-runner", "backup", "src"], False),
    (["backup", "src", "--no-runner"], False),
    (["restore", "latest", "out", "--help"], False),
    (["snapshots"], False),
    (["runner", "status"], False),
    (["repair", "index"], True),
    (["init", "--repo", "r"], True),  # only to a runner that is up (test_cli_runner.py)
])
def test_only_flow_commands_go_to_the_runner(monkeypatch, argv, goes):
    monkeypatch.delenv("BACKUPFLOW_RUNNER", raising=False)
    monkeypatch.chdir("/")  # no config/config.toml here
    assert runner_client.wanted(argv) is goes


def test_the_flag_is_removed_before_the_command_parses_but_not_after_a_double_dash():
    assert runner_client.without_flag(["backup", "--no-runner", "src"]) == ["backup", "src"]
    assert runner_client.without_flag(["backup", "--", "--no-runner"]) == ["backup", "--", "--no-runner"]


def test_messages_round_trip_with_file_descriptors_and_limits_are_enforced():
    a, b = socket.socketpair()
    with a, b:
        wire.send(a, {"type": "run", "argv": ["backup", "ü"]}, fds=[0])
        fds: list[int] = []
        assert wire.receive(b, fds) == {"type": "run", "argv": ["backup", "ü"]}
        assert len(fds) == 1
        for fd in fds:
            socket.close(fd)
        a.sendall(struct.pack(">I", wire.MAX_MESSAGE + 1))
        with pytest.raises(wire.ProtocolError, match="over the"):
            wire.receive(b)
    with pytest.raises(wire.ProtocolError):
        wire.encode({"type": "run", "env": {"X": "y" * wire.MAX_MESSAGE}})
    for body in (b"not json", b"[1]", b'{"no": "type"}'):
        with pytest.raises(wire.ProtocolError):
            wire.decode(body)


def test_a_connection_closed_mid_message_is_an_error_and_between_messages_is_the_end():
    a, b = socket.socketpair()
    with b:
        a.sendall(wire.encode({"type": "status"})[:-3])
        a.close()
        with pytest.raises(wire.ProtocolError, match="middle"):
            wire.receive(b)
    a, b = socket.socketpair()
    with b:
        a.close()
        assert wire.receive(b) is None
