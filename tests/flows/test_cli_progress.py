"""A progress bar on a terminal, none when stdout is a pipe (what a user sees either way)."""

from __future__ import annotations

import os
import subprocess

from tests.flows.cli_process import BACKUPFLOW, cli_env, run


def _tree(root, files=40, size=256 * 1024):
    root.mkdir()
    for i in range(files):
        (root / f"f{i}.bin").write_bytes(os.urandom(size))


def _run_on_pty(args, env, cwd) -> tuple[int, str]:
    master, slave = os.openpty()
    proc = subprocess.Popen([BACKUPFLOW, *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    return proc.wait(timeout=120), out.decode("utf-8", "replace")


def test_backup_shows_a_progress_bar_on_a_terminal_and_none_on_a_pipe(prefect_server, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    env = cli_env(prefect_server, tmp_path)
    code, screen = _run_on_pty(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path)
    assert code == 0, screen
    assert "backup 40/40 files" in screen and "━" in screen, screen[-2000:]
    assert "saved: 40 files" in screen

    (src / "new.bin").write_bytes(os.urandom(1000))
    piped = run(["backup", str(src), "-r", str(tmp_path / "repo")], env, tmp_path).ok()
    assert "\x1b[" not in piped.stdout and "━" not in piped.stdout
    assert piped.stdout.startswith("snapshot ") and "saved: 41 files" in piped.stdout
