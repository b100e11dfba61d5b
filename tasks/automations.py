"""Prefect automations that tell people what happened, and the events backupflow emits for them.

One module for every automation backupflow creates: the notifications, and unresponsive runs
becoming Crashed (:func:`unresponsive_runs`). Each automation has a fixed name starting with
"backupflow: ", so :func:`ensure` finds the one made before and updates it: running setup
again changes nothing but what was asked, and never makes a second copy.

Events (emitted inside runs, sent with the run's other events):

- ``backupflow.verify.damaged`` on resource ``backupflow.repository.<URL>``: a verify found damage.
- ``backupflow.backup.completed`` on resource ``backupflow.source.<host>:<path>``: a snapshot of
  that source was saved; the "missed backup" automation expects one per source in time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable
from uuid import UUID

from prefect import get_client
from prefect.events import emit_event
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from storage.errors import InvalidInput, NotFound

PREFIX = "backupflow: "
DAMAGE_EVENT = "backupflow.verify.damaged"
BACKUP_EVENT = "backupflow.backup.completed"


def source_resource(host: str, source: str) -> str:
    return f"backupflow.source.{host}:{source}"


def emit_backup_completed(host: str, source: str, snapshot_id: str, kind: str) -> None:
    emit_event(event=BACKUP_EVENT, resource={"prefect.resource.id": source_resource(host, source),
                                             "prefect.resource.name": source},
               payload={"snapshot": snapshot_id, "type": kind})


def emit_verify_damaged(repo_display: str, problems: int, snapshots: list[str]) -> None:
    emit_event(event=DAMAGE_EVENT, resource={"prefect.resource.id": f"backupflow.repository.{repo_display}",
                                             "prefect.resource.name": repo_display},
               payload={"problems": problems, "damaged_snapshots": [s[:8] for s in snapshots]})


def _runs_of(flow_names: Iterable[str]) -> dict[str, Any]:
    return {"prefect.resource.role": "flow", "prefect.resource.name": sorted(set(flow_names))}


def notification_automations(flow_names: Iterable[str], block_id: UUID,
                             missed_after: timedelta) -> list[AutomationCore]:
    """The four notifications: a run Failed or Crashed, a verify found damage, an approval
    waits, no successful backup of a source within ``missed_after``."""
    names = list(flow_names)

    def tell(subject: str, body: str) -> list:
        return [SendNotification(block_document_id=block_id, subject=subject, body=body)]

    run_link = "Run: {{ flow_run.name }}\n{{ flow_run|ui_url }}"
    hours = f"{missed_after.total_seconds() / 3600:g} h"
    return [
        AutomationCore(
            name=PREFIX + "run failed or crashed",
            description="A backupflow flow run ended Failed or Crashed.",
            trigger=EventTrigger(expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                                 match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=_runs_of(names),
                                 posture=Posture.Reactive, threshold=1, within=timedelta(0)),
            actions=tell("backupflow: a run {{ flow_run.state.name }}",
                         "The backupflow run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
                         "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}")),
        AutomationCore(
            name=PREFIX + "verify found damage",
            description="A verify found damaged objects or snapshots in a repository.",
            trigger=EventTrigger(expect={DAMAGE_EVENT}, match={"prefect.resource.id": "backupflow.repository.*"},
                                 posture=Posture.Reactive, threshold=1, within=timedelta(0)),
            actions=tell("backupflow: the repository {{ event.resource.name }} is damaged",
                         "A verify of {{ event.resource.name }} found {{ event.payload.problems }} problem(s); "
                         "damaged snapshots: {{ event.payload.damaged_snapshots }}.\n" + run_link)),
        AutomationCore(
            name=PREFIX + "approval waiting",
            description="A backupflow run waits for someone to approve or reject it.",
            trigger=EventTrigger(expect={"prefect.flow-run.Paused"},
                                 match={"prefect.resource.id": "prefect.flow-run.*"},
                                 match_related=_runs_of(names), posture=Posture.Reactive, threshold=1,
                                 within=timedelta(0)),
            actions=tell("backupflow: approval needed for {{ flow_run.name }}",
                         "The run {{ flow_run.name }} waits for an approval: open it to approve or reject, or run "
                         "`backupflow approve {{ flow_run.id }} --reason ...`.\n{{ flow_run|ui_url }}")),
        AutomationCore(
            name=PREFIX + "missed backup",
            description=f"No successful backup of a source for {hours}.",
            trigger=EventTrigger(after={BACKUP_EVENT}, expect={BACKUP_EVENT},
                                 match={"prefect.resource.id": "backupflow.source.*"},
                                 for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
                                 within=missed_after),
            actions=tell("backupflow: missed backup",
                         f"No successful backup for {hours}: {{{{ labels.prefect.resource.id }}}}")),
    ]


DEFAULT_CRASH_AFTER = timedelta(minutes=9)
FINAL_EVENTS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def unresponsive_runs(flow_names: Iterable[str], crash_after: timedelta = DEFAULT_CRASH_AFTER) -> AutomationCore:
    """Set Crashed a backupflow flow run whose heartbeats stopped for ``crash_after`` before it ended.

    A run on a worker whose machine dies (power cut, SIGKILL, an evicted container) stays
    Running for good: nothing is left to report its end. Runs on workers send a
    ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's
    default 180; the README's workers use 60); this expects, after each, another heartbeat or a
    final state (Prefect's guide "How to detect and respond to zombie flows"). ``crash_after``
    must stay well above the longest heartbeat interval of any worker, or a live run is caught:
    the default is three of Prefect's default intervals. CLI runs send no heartbeats
    (flows.runtime turns them off for speed) and are never matched; their own host marks them
    Crashed (flows.crashed_runs)."""
    minutes = f"{crash_after.total_seconds() / 60:g}"
    return AutomationCore(
        name=PREFIX + "unresponsive runs become Crashed",
        description=f"A backupflow run on a worker that sent no heartbeat for {minutes} minutes is set Crashed.",
        trigger=EventTrigger(after={"prefect.flow-run.heartbeat"}, expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
                             match={"prefect.resource.id": "prefect.flow-run.*"}, match_related=_runs_of(flow_names),
                             for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
                             within=crash_after),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=(
            f"No heartbeat for {minutes} minutes: the worker or machine running this flow run stopped without "
            "reporting its end. A backup it ran made no snapshot unless `backupflow snapshots` lists one; what it "
            "uploaded is reused by the next backup."))])


def notification_block_id(name: str) -> UUID:
    """The id of the notification block ``name`` (``TYPE-SLUG/NAME`` or a name only one type uses)."""
    with get_client(sync_client=True) as client:
        if "/" in name:
            kind, _, plain = name.partition("/")
            try:
                return client.read_block_document_by_name(plain, kind).id
            except ObjectNotFound:
                raise NotFound(f"There is no {kind} block named {plain!r}; create it in the Prefect UI "
                               "(Blocks) or with Python, then run this again.") from None
        found = [d for d in client.read_block_documents(limit=200)
                 if d.name == name and "notify" in (d.block_schema.capabilities if d.block_schema else [])]
    if not found:
        raise NotFound(f"There is no notification block named {name!r}; create one (Slack, email, a webhook) in "
                       "the Prefect UI under Blocks, then run this again.")
    if len(found) > 1:
        kinds = ", ".join(f"{d.block_type.slug}/{name}" for d in found if d.block_type)
        raise InvalidInput(f"Several notification blocks are named {name!r}; name one as TYPE/NAME: {kinds}.")
    return found[0].id


def ensure(automations: list[AutomationCore]) -> list[tuple[str, str]]:
    """Create each automation, or update the one of the same name (and remove extra copies).
    Returns (name, "created" or "updated") pairs."""
    done = []
    with get_client(sync_client=True) as client:
        for automation in automations:
            existing = client.read_automations_by_name(automation.name)
            for extra in existing[1:]:
                client.delete_automation(extra.id)
            if existing:
                client.update_automation(existing[0].id, automation)
                done.append((automation.name, "updated"))
            else:
                client.create_automation(automation)
                done.append((automation.name, "created"))
    return done
