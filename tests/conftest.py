"""Session-wide fixtures: a real Prefect server, shared by every test that runs a flow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile

import pytest

from tests.prefect_server import QUIET_ENV, PrefectServer

pytest_plugins = ["tests.cloud_servers",  # s3_server, azure_server, gcs_server, cloud_destination
                  "tests.postgres_server"]  # postgres_prefect_server

for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)
# The CLI runs of the suite go through a resident runner, as users' do: one for the session, in
# folders of its own (never the user's runner or local Prefect server), stopped at the end.
# (short, under /tmp: a Unix socket's path may not exceed 107 bytes)
_RUNNER_HOME = tempfile.mkdtemp(prefix="bft-", dir="/tmp" if os.path.isdir("/tmp") else None)
os.environ["XDG_RUNTIME_DIR"] = os.path.join(_RUNNER_HOME, "r")
os.environ["XDG_DATA_HOME"] = os.path.join(_RUNNER_HOME, "data")
os.environ.setdefault("BACKUPFLOW_RUNNER_IDLE_MINUTES", "5")  # gone soon after a session that was killed
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
# New repositories are encrypted: every process of the session has the suite's password, as a
# user's environment would (tests/suite_password.py); never the developer's own password.
from tests.suite_password import PASSWORD as SUITE_PASSWORD  # noqa: E402  (after GCSFS_... is set)

_PASSWORD_FILE = os.path.join(_RUNNER_HOME, "password")
with open(os.open(_PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as _f:
    _f.write(SUITE_PASSWORD + "\n")
os.environ["BACKUPFLOW_PASSWORD_FILE"] = _PASSWORD_FILE
os.environ.pop("BACKUPFLOW_PASSWORD", None)
os.environ.setdefault("BACKUPFLOW_SCRYPT_N", "1024")

from prefect.context import refresh_global_settings_context  # noqa: E402  (after the quiet env is set)


@pytest.fixture(scope="session", autouse=True)
def session_runner():
    """Stops the session's runner (and any local Prefect server it started) at the end."""
    yield
    from flows.cli import runner_client
    from flows.cli.runner_protocol import runtime_dir
    # every runner of the session: one per set of rights (tests run some commands with fewer)
    for pid_file in runtime_dir().glob("runner-*.pid"):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            continue
        runner_client.wait_gone(pid)
    shutil.rmtree(_RUNNER_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server on a free port; PREFECT_API_URL points at it for this process."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    # Prefect reads its settings once at import; without a refresh, flows run in this process
    # would ignore PREFECT_API_URL and start their own ephemeral server.
    refresh_global_settings_context()
    yield server
    # Send what the flows logged while the server is still there (else: "Error logging to API").
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    EventsWorker.drain_all(timeout=10)
    APILogWorker.drain_all(timeout=10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    refresh_global_settings_context()
    server.stop()


@pytest.fixture(scope="session")
def panel_server(tmp_path_factory):
    """A Prefect server as users run one: its UI and services (events, automations, notifications)
    on. Not the session's default server, which runs without services to stay light. Nothing in
    this process points at it; tests pass ``panel_server.env()`` to what they run."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-panel"), services=True,
                           extra_env={"PREFECT_UI_ENABLED": "true",
                                      "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                                      "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false"}).start()
    yield server
    server.stop()
