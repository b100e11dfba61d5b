"""Run the installed ``backupflow`` command in a subprocess, as a user would, against the test
Prefect server, from a scratch folder (so no ./config/config.toml is picked up)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.suite_password import SUITE_ENV

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        assert self.returncode == 0, f"backupflow {' '.join(self.args)} failed ({self.returncode}): {self.stderr}"
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"--json must print exactly one JSON object, got:\n{self.stdout}"
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        return obj

    def ok(self) -> "Result":
        assert self.returncode == 0, f"backupflow {' '.join(self.args)} failed ({self.returncode}): {self.stderr}"
        return self

    def one_sentence_error(self) -> str:
        """The failure contract: non-zero exit, one line on stderr starting 'backupflow: ', no traceback."""
        assert self.returncode != 0, f"backupflow {' '.join(self.args)} should have failed:\n{self.stdout}"
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert "Traceback" not in self.stderr, self.stderr
        assert len(lines) == 1 and lines[0].startswith("backupflow: "), f"stderr was:\n{self.stderr}"
        return lines[0]


def cli_env(server, work: Path, **extra: str) -> dict[str, str]:
    # BACKUPFLOW_RUNNER_*: how the session's runner behaves (tests/conftest.py), not a setting under test
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPFLOW_")
           or k.startswith("BACKUPFLOW_RUNNER_") or k in SUITE_ENV}
    env.update(server.env())
    env["BACKUPFLOW_AUDIT_PATH"] = str(work / "audit")
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([BACKUPFLOW, *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> Result:
    proc = subprocess.run([BACKUPFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


def wait_for_approval(proc: subprocess.Popen, what: str, timeout: float = 300) -> tuple[str, list[str]]:
    """Read the command's stderr until it says which flow run waits for approval."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"Waiting for approval of flow run ([0-9a-f-]{36})", line)
        if match:
            return match.group(1), seen
    proc.kill()
    raise AssertionError(f"{what} never said it was waiting:\n" + "".join(seen))
