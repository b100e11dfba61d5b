"""Start one real Prefect server for the whole pytest run.

Approval flows resume from another process only through a real server, so the suite uses one
rather than Prefect's in-process harness. Its database lives in a temporary PREFECT_HOME.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None,
              auth: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}:\n{text}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    text = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"no answer from {url} within {timeout}s:\n{text}")


class PrefectServer:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None, services: bool = False):
        self.home = home
        self.services = services  # the event persister is a service: events are stored only with it
        self.extra_env = dict(extra_env or {})  # e.g. PREFECT_SERVER_API_AUTH_STRING
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {**QUIET_ENV, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url}

    def start(self) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(self.home), "PREFECT_UI_API_URL": self.api_url,
               **self.extra_env}
        env.pop("PREFECT_API_URL", None)
        log = self.home / "server.log"
        self.log = log
        prefect = Path(sys.executable).with_name("prefect")
        self.proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
             *([] if self.services else ["--no-services"])],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_http(f"{self.api_url}/health", 120, self.proc, log, self.extra_env.get("PREFECT_SERVER_API_AUTH_STRING"))
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
