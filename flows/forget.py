"""Deleting flows: forget snapshots (plan -> Guardian approval -> forget -> prune -> report),
and prune on its own.

A dry run plans and returns; it changes nothing, so it asks nobody and is not audited (like
the read-only commands). ``prune_flow`` asks for no approval: it deletes only data that no
snapshot references and no running backup may commit; the decision that made data
unreferenced was the approved forget. It is audited as ``prune.started/completed/failed``.
"""

from __future__ import annotations

import getpass
from typing import Any

from flows.run_names import rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage.backend import display_url
from storage.errors import IntegrityError, Locked
from tasks.approval_gate import request_approval
from tasks.audit_events import audited
from tasks.forget import forget_snapshots, plan_forget, prune_packs, publish_cleanup_report


@plain_flow(name="forget", flow_run_name="forget {snapshots}", validate_parameters=False)  # see plain_flow
def forget_flow(snapshots: list[str], repo: str, prune: bool = False, chain: bool = False, dry_run: bool = False,
                options: dict[str, Any] | None = None, requester: str | None = None) -> dict[str, Any]:
    """Forget ``snapshots`` (ids or unique prefixes) of ``repo``; with ``chain`` also every
    snapshot that depends on them; with ``prune`` delete the data nothing needs any more."""
    options = options or {}
    requester = requester or getpass.getuser()
    if dry_run:
        plan = plan_forget(repo, options, snapshots, prune, chain)
        return {**plan, "dry_run": True, "forgotten": [], "flow_run_id": current_flow_run_id()}
    where = display_url(repo)
    with audited("delete", "requested", target=where, repo=repo, user=requester,
                 details={"snapshots": list(snapshots), "prune": prune, "chain": chain}, options=options) as trail:
        plan = plan_forget(repo, options, snapshots, prune, chain)
        trail.details.update(planned=plan["snapshots"], bytes_freed=plan["bytes_freed"])
        request_approval({
            "kind": "delete", "repo": where, "snapshots": plan["snapshots"], "requester": requester,
            "last_snapshot": plan["last_snapshot"], "full_with_dependants": plan["full_with_dependants"],
            "bytes_freed": plan["bytes_freed"],
        }, repo=repo, options=options)
        done = forget_snapshots(repo, options, plan)
        result = {**plan, "dry_run": False, "forgotten": done["forgotten"], "prune": None}
        if prune:
            try:
                result["prune"] = prune_packs(repo, options)
            except (Locked, IntegrityError) as exc:
                # The snapshots are gone either way; their data waits for the next prune (after a
                # running backup ends, or after `backupflow repair` when prune found damage).
                result["prune_skipped"] = exc.message
        trail.details.update(forgotten=result["forgotten"], pruned=result["prune"],
                             prune_skipped=result.get("prune_skipped"))
        rename_run("forget " + ", ".join(s[:8] for s in result["forgotten"]))
        publish_cleanup_report(result, where, repo, options)
        result["flow_run_id"] = current_flow_run_id()
    return result


@plain_flow(name="prune", flow_run_name="prune", validate_parameters=False)  # see plain_flow
def prune_flow(repo: str, dry_run: bool = False, options: dict[str, Any] | None = None,
               requester: str | None = None, wait_minutes: float = 0) -> dict[str, Any]:
    """Delete the packs of ``repo`` that no snapshot and no running backup needs. While
    backups or readers run it refuses (Locked), or with ``wait_minutes`` waits up to that long
    for them to finish (what a scheduled prune on a fleet of workers wants)."""
    options = options or {}
    if dry_run:
        return {**prune_packs(repo, options, dry_run=True), "flow_run_id": current_flow_run_id()}
    where = display_url(repo)
    with audited("prune", "started", target=where, repo=repo, user=requester or getpass.getuser(),
                 options=options) as trail:
        report = prune_packs(repo, options, wait_seconds=wait_minutes * 60)
        trail.details.update(packs_deleted=report["packs_deleted"], bytes_freed=report["bytes_freed"],
                             packs_kept_live=report["packs_kept_live"])
        publish_cleanup_report({"prune": report}, where)
        report["flow_run_id"] = current_flow_run_id()
    return report
