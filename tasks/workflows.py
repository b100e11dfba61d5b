"""The workflows a backup carries (``include_workflows``): backupflow's Prefect deployments
(tag ``backupflow``), their schedules, and the automations whose name says backupflow, read from
the Prefect server into plain data and kept with the snapshot (storage/repository/workflows.py);
and put back on a server from there.

No secret travels: parameters and job variables whose name the one credential rule calls
secret (storage.backend.is_secret_name) are left out, and automations refer to notification
blocks by id, never holding their URLs or keys.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import get_client, task
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.events.schemas.automations import AutomationCore

from storage.backend import is_secret_name
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS

EXPORT_FORMAT = 1
TAG = "backupflow"


def without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def _deployment(d: Any, flow_names: dict[Any, str]) -> dict[str, Any]:
    return {
        "flow_name": flow_names.get(d.flow_id, ""), "name": d.name, "description": d.description,
        "entrypoint": d.entrypoint, "path": d.path, "tags": list(d.tags),
        "parameters": without_secrets(d.parameters), "job_variables": without_secrets(d.job_variables or {}),
        "work_pool_name": d.work_pool_name, "work_queue_name": d.work_queue_name,
        "pull_steps": without_secrets(d.pull_steps or []), "paused": d.paused,
        "parameter_openapi_schema": d.parameter_openapi_schema,
        "enforce_parameter_schema": d.enforce_parameter_schema,
        "schedules": [{"schedule": s.schedule.model_dump(mode="json"), "active": s.active} for s in d.schedules],
    }


def read_workflows() -> dict[str, Any]:
    """The export, from the Prefect server this process talks to."""
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG])))
        flow_names = {f.id: f.name for f in client.read_flows()}
        automations = [a for a in client.read_automations() if TAG in a.name.lower()]
    return {
        "format": EXPORT_FORMAT, "exported_at": datetime.now(timezone.utc).isoformat(),
        "deployments": [_deployment(d, flow_names) for d in deployments],
        "automations": [without_secrets(a.model_dump(mode="json", include=set(AutomationCore.model_fields)))
                        for a in automations],
    }


def _create_deployment(client: Any, d: dict[str, Any]) -> None:
    flow_id = client.create_flow_from_name(d["flow_name"])
    schedules = [DeploymentScheduleCreate.model_validate(s) for s in d["schedules"]]
    client.create_deployment(
        flow_id=flow_id, name=d["name"], description=d["description"], entrypoint=d["entrypoint"],
        path=d["path"], tags=d["tags"], parameters=d["parameters"], job_variables=d["job_variables"],
        work_pool_name=d["work_pool_name"], work_queue_name=d["work_queue_name"], pull_steps=d["pull_steps"],
        paused=d["paused"], parameter_openapi_schema=d["parameter_openapi_schema"],
        enforce_parameter_schema=d["enforce_parameter_schema"], schedules=schedules)


def write_workflows(export: dict[str, Any]) -> dict[str, list[str]]:
    """Create (or replace, by name) every deployment and automation of ``export``."""
    done: dict[str, list[str]] = {"deployments": [], "automations": [], "skipped": []}
    with get_client(sync_client=True) as client:
        for d in export.get("deployments", []):
            name = f"{d['flow_name']}/{d['name']}"
            try:
                _create_deployment(client, d)
            except Exception as exc:  # noqa: BLE001 - one that cannot come back (its work pool is gone) is named
                done["skipped"].append(f"{name}: {exc}")
                continue
            done["deployments"].append(name)
        for a in export.get("automations", []):
            for old in client.read_automations_by_name(a["name"]):
                client.delete_automation(old.id)
            client.create_automation(AutomationCore.model_validate(a))
            done["automations"].append(a["name"])
    return done


@task(name="save_workflows", **TASK_OPTIONS)
def save_workflows(repo: str, options: dict[str, Any], snapshot_id: str) -> dict[str, int]:
    """Export the workflows and keep them with the snapshot; how many of each were kept."""
    export = read_workflows()
    open_repo(repo, options).save_workflows(snapshot_id, export)
    return {"deployments": len(export["deployments"]), "automations": len(export["automations"])}


@task(name="restore_workflows", **TASK_OPTIONS)
def restore_workflows(repo: str, options: dict[str, Any], snapshot: str) -> dict[str, Any]:
    """Put the workflows a snapshot carries back on the Prefect server."""
    r = open_repo(repo, options)
    snap = r.snapshot(snapshot)
    return {"snapshot_id": snap.id, **write_workflows(r.workflows(snap.id))}
