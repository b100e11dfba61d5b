"""Session-wide fixtures: a real Prefect server, shared by every test that runs a flow."""

from __future__ import annotations

import os

import pytest

from tests.prefect_server import QUIET_ENV, PrefectServer

pytest_plugins = ["tests.cloud_servers"]  # s3_server, azure_server, gcs_server, cloud_destination

for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from prefect.context import refresh_global_settings_context  # noqa: E402  (after the quiet env is set)


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
