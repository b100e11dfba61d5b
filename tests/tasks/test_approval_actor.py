"""Who clicked, where the server knows: an approval decision's audit record carries the user
the Prefect server names as the actor of the run's last state change (Prefect Cloud records
one; the open-source server records nobody, and then the record says None)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.approval_gate import server_actor


def post_event(api: str, run_id: str, related: list[dict]) -> None:
    event = {"id": str(uuid.uuid4()), "occurred": datetime.now(timezone.utc).isoformat(),
             "event": "prefect.flow-run.Running", "resource": {"prefect.resource.id": f"prefect.flow-run.{run_id}"},
             "related": related, "payload": {}}
    assert httpx.post(f"{api}/events", json=[event]).status_code == 204


def test_the_server_named_actor_is_recorded_and_none_when_the_server_knows_nobody(panel_server):
    named, anonymous = str(uuid.uuid4()), str(uuid.uuid4())
    post_event(panel_server.api_url, named, [{"prefect.resource.id": "prefect-cloud.user.42",
                                              "prefect.resource.role": "actor",
                                              "prefect.resource.name": "alice@example.com"}])
    post_event(panel_server.api_url, anonymous, [])  # what the open-source server sends: no actor
    with temporary_settings(updates={PREFECT_API_URL: panel_server.api_url}):
        deadline = time.monotonic() + 60
        while server_actor(named) is None and time.monotonic() < deadline:
            time.sleep(0.5)  # events are stored a moment after they arrive
        assert server_actor(named) == "alice@example.com"
        assert server_actor(anonymous) is None
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert server_actor(named) is None  # no server: no name, and the decision is not held up
