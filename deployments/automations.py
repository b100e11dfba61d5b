"""backupflow's Prefect automations, created (or brought up to date) on the server by name.

One of them so far: **unresponsive runs become Crashed**. A flow run on a worker whose machine
dies (power cut, SIGKILL, an evicted container) stays Running for good: nothing is left to
report its end. Flow runs on workers send a ``prefect.flow-run.heartbeat`` event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's default 180; the README's worker
set-up uses 60). The automation expects, after each heartbeat of a flow run, another heartbeat
or a final state within ``crash_after`` and otherwise sets the run Crashed (Prefect's guide
"How to detect and respond to zombie flows"). CLI runs send no heartbeats (flows.runtime
turns them off for speed) and are never matched; their own host marks them Crashed instead
(flows.crashed_runs).

``crash_after`` must be well above the longest heartbeat interval of any worker on the server,
or a slow but live run is marked Crashed: the default is three of Prefect's default intervals.

``python -m deployments.automations [--crash-after-minutes N]`` creates them on the server of
PREFECT_API_URL; running it again updates them in place.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

UNRESPONSIVE_RUNS = "backupflow: unresponsive runs become Crashed"
DEFAULT_CRASH_AFTER = timedelta(minutes=9)
FINAL_EVENTS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def unresponsive_runs(crash_after: timedelta = DEFAULT_CRASH_AFTER) -> AutomationCore:
    """Set Crashed a flow run whose heartbeats stopped for ``crash_after`` before it ended."""
    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=crash_after,
    )
    message = (f"No heartbeat for {crash_after.total_seconds() / 60:g} minutes: the worker or machine running "
               "this flow run stopped without reporting its end. A backup it ran made no snapshot unless one is "
               "listed by `backupflow snapshots`; what it uploaded is reused by the next backup.")
    return AutomationCore(
        name=UNRESPONSIVE_RUNS,
        description="Marks Crashed the flow runs whose worker died (issue 9); see deployments/automations.py.",
        trigger=trigger,
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=message)],
    )


def ensure(client: SyncPrefectClient, automation: AutomationCore) -> str:
    """Create ``automation`` or update the one of its name in place; 'created' or 'updated'."""
    existing = client.read_automations_by_name(automation.name)
    if existing:
        client.update_automation(existing[0].id, automation)
        for extra in existing[1:]:  # two set-ups that raced: keep one
            client.delete_automation(extra.id)
        return "updated"
    client.create_automation(automation)
    return "created"


def ensure_automations(client: SyncPrefectClient | None = None,
                       crash_after: timedelta = DEFAULT_CRASH_AFTER) -> dict[str, str]:
    """Every backupflow automation on the server: name -> 'created' or 'updated'."""
    if client is None:
        with get_client(sync_client=True) as own:
            return ensure_automations(own, crash_after)
    wanted = [unresponsive_runs(crash_after)]
    return {a.name: ensure(client, a) for a in wanted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.automations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--crash-after-minutes", type=float, default=DEFAULT_CRASH_AFTER.total_seconds() / 60,
                        help="minutes without a heartbeat before a run is marked Crashed (default %(default)g)")
    args = parser.parse_args(argv)
    for name, what in ensure_automations(crash_after=timedelta(minutes=args.crash_after_minutes)).items():
        print(f"{what}: {name}")


if __name__ == "__main__":
    main()
