"""backupflow as users run it: the installed `backupflow` command, default configuration, with
the resident runner (and its local Prefect server) started before the timed steps.

    python -m bench.run --tools backupflow-cli,restic,borg --subject backupflow-cli

Each step is the short-lived client plus the work the runner does for it in a forked child, so
a step's figures count both (issue 12): the runner's CPU time (its own and its reaped
children's, from /proc/PID/stat) and its memory growth (its VmHWM reset with
``/proc/PID/clear_refs`` = 5 before the step, and the high-water mark of each child it forks,
both less its resident size before the step), plus the same two figures for the local Prefect
server the runner started (the server is a process a user's command needs too). Peak memory of
the step = the client's peak + that growth. The runner and its server live in this tool's
scratch folder, never the user's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.tools import Tool

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system time of the process and of the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def _is_server(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return "server" in cmd and any(part.endswith("prefect") for part in cmd)


class RunnerProbe:
    """The runner's share of one step; :func:`bench.measure.run` calls begin, sample, end.

    The runner has two kinds of children: the child it forks for each command, and (with no
    PREFECT_API_URL) the local Prefect server it started, which lives as long as the runner.
    A step waits for its command's child only; the server's CPU time and memory growth during
    the step are counted too, since a user's command needs that process as well."""

    def __init__(self, pid: int):
        self.pid = pid
        self.server = next((c.pid for c in psutil.Process(pid).children() if _is_server(c)), None)
        self.base_rss = 0
        self.server_base_rss = 0
        self.cpu0 = 0.0
        self.server_cpu0 = 0.0
        self.child_peak = 0

    def _commands(self) -> list[psutil.Process]:
        try:
            return [c for c in psutil.Process(self.pid).children() if c.pid != self.server]
        except psutil.NoSuchProcess:
            return []

    def begin(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := current RSS
        self.base_rss = _status_kib(self.pid, "VmRSS")
        self.cpu0 = cpu_seconds(self.pid)
        if self.server:
            Path(f"/proc/{self.server}/clear_refs").write_text("5")
            self.server_base_rss = _status_kib(self.server, "VmRSS")
            self.server_cpu0 = cpu_seconds(self.server)
        self.child_peak = 0

    def sample(self) -> None:
        for child in self._commands():
            self.child_peak = max(self.child_peak, _status_kib(child.pid, "VmHWM"))

    def end(self, timeout: float = 120.0) -> tuple[float, int]:
        """(CPU seconds, memory growth in bytes) once the step's child has ended and been reaped
        (a child drains its events to the server after the client has its answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            if not self._commands():
                break
            time.sleep(0.01)
        growth = max(_status_kib(self.pid, "VmHWM"), self.child_peak) - self.base_rss
        cpu = cpu_seconds(self.pid) - self.cpu0
        if self.server:
            growth += max(0, _status_kib(self.server, "VmHWM") - self.server_base_rss)
            cpu += cpu_seconds(self.server) - self.server_cpu0
        return cpu, max(0, growth)


class BackupflowCLI(Tool):
    """The `backupflow` command next to this interpreter, through its resident runner."""

    name = "backupflow-cli"

    def __init__(self, scratch: Path, api_url: str | None = None):
        super().__init__(scratch)
        self.api_url = api_url  # None: the runner starts its local Prefect server, as for a new user
        self.cli = str(Path(sys.executable).with_name("backupflow"))
        self.probe: RunnerProbe | None = None
        # short: a Unix socket's path may not exceed 107 bytes, and work folders can be deep
        self.runtime = Path(tempfile.mkdtemp(prefix="bf-runner-"))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPFLOW_", "PREFECT_API_URL"))}
        # encrypted, as users' repositories are by default (and restic's always are): its
        # password from a file, as a scheduled backup would read it
        secret = self.scratch / "password"
        if not secret.exists():
            secret.parent.mkdir(parents=True, exist_ok=True)
            with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write("bench-password\n")
        env.update(BACKUPFLOW_RUNTIME_DIR=str(self.runtime), BACKUPFLOW_DATA_DIR=str(self.scratch / "data"),
                   BACKUPFLOW_RUNNER_IDLE_MINUTES="0", BACKUPFLOW_PASSWORD_FILE=str(secret))
        if self.api_url:
            env["PREFECT_API_URL"] = self.api_url
        return env

    def available(self) -> str | None:
        return None if Path(self.cli).exists() else f"{self.cli} is not installed"

    def version(self) -> str:
        return "backupflow CLI + resident runner"

    def start(self) -> None:
        """Start the runner (and, without api_url, its Prefect server) outside any timing: one
        throw-away backup, as a user's first command would."""
        warm = self.scratch / "warm"
        warm.mkdir(exist_ok=True)
        (warm / "f").write_text("warm\n")
        subprocess.run([self.cli, "backup", str(warm), "--repo", str(self.scratch / "warm-repo")], env=self.env(),
                       cwd=self.scratch, check=True, capture_output=True, timeout=600)
        pid_file = next(self.runtime.glob("runner-*.pid"))
        self.probe = RunnerProbe(json.loads(pid_file.read_text())["pid"])

    def stop(self) -> None:
        subprocess.run([self.cli, "runner", "stop"], env=self.env(), cwd=self.scratch, capture_output=True, timeout=300)
        self.probe = None
        shutil.rmtree(self.runtime, ignore_errors=True)

    def _cmd(self, *args: str) -> tuple[list[str], Path | None]:
        return [self.cli, *args], self.scratch  # the scratch folder: no config/config.toml there

    def init(self, repo):
        return self._cmd("init", "--repo", str(repo))

    def backup(self, repo, source):
        return self._cmd("backup", str(source), "--repo", str(repo), "--json")

    def restore(self, repo, target):
        return self._cmd("restore", "latest", str(target), "--repo", str(repo), "--json")

    def verify(self, repo):
        return self._cmd("verify", "--read-data", "--repo", str(repo), "--json")


class BackupflowCLIPlain(BackupflowCLI):
    """The same command on an unencrypted repository (``init --encryption none``), to measure
    what encryption costs a user (issue 13: a first backup <= 1.1x the unencrypted one)."""

    name = "backupflow-cli-plain"

    def version(self) -> str:
        return "backupflow CLI + resident runner, unencrypted"

    def init(self, repo):
        return self._cmd("init", "--repo", str(repo), "--encryption", "none")
