"""A real `python -m deployments.serve` process stops cleanly on the first SIGTERM or SIGINT
(systemd's `systemctl stop` sends one SIGTERM, waits, then SIGKILLs), whether it is still
registering its deployments or already serving them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _serve(prefect_server, tmp_path) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, **prefect_server.env(), "BACKUPFLOW_AUDIT_PATH": str(tmp_path / "audit")}
    (tmp_path / "src").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.serve", "--source", str(tmp_path / "src"),
         "--repo", str(tmp_path / "repo")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


def _wait_for(lines: list[str], text: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(lines)):
        assert proc.poll() is None, f"serve ended early ({proc.returncode}):\n{''.join(lines)}"
        assert time.monotonic() < deadline, f"serve never printed {text!r}:\n{''.join(lines)}"
        time.sleep(0.1)


@pytest.mark.parametrize("sig, when", [
    (signal.SIGTERM, "backupflow: serving"),                        # still registering the deployments
    (signal.SIGTERM, "Your deployments are being served"),
    (signal.SIGINT, "backupflow: serving"),
    (signal.SIGINT, "Your deployments are being served"),
])
def test_the_first_stop_signal_ends_serve_cleanly(prefect_server, tmp_path, sig, when):
    proc, lines = _serve(prefect_server, tmp_path)
    try:
        _wait_for(lines, when, proc)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)  # systemd's default stop timeout is 90 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)  # let the reader thread take the last lines
    text = "".join(lines)
    assert code == 0, f"serve ended with {code} after {sig.name}:\n{text}"
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "backupflow: stopped serving." in text, text
