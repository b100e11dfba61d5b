"""Repair flows: ``repair index`` (no approval: it only adds index objects and removes
unreadable ones) and ``repair snapshots`` (plan -> Guardian approval -> rewrite -> report): it
deletes manifests, so it is asked for like a forget, as a ``delete`` of those snapshots.

Both are audited (``repair.started/completed/failed``); the completed event lists the removed
and replaced snapshot ids, so the audit log's record of which snapshots should exist stays true.
"""

from __future__ import annotations

import getpass
from typing import Any

from flows.runtime import current_flow_run_id, plain_flow
from storage.backend import display_url
from tasks.approval_gate import request_approval
from tasks.audit_events import audited
from tasks.repair import plan_repair_snapshots, repair_index, repair_snapshots


@plain_flow(name="repair-index", flow_run_name="repair index", validate_parameters=False)  # see plain_flow
def repair_index_flow(repo: str, options: dict[str, Any] | None = None, requester: str | None = None) -> dict[str, Any]:
    """Re-index every pack no readable index object names; delete the damaged index objects."""
    options = options or {}
    with audited("repair", "started", target=display_url(repo), repo=repo, user=requester or getpass.getuser(),
                 details={"what": "index"}, options=options) as trail:
        result = repair_index(repo, options)
        trail.details.update(packs_indexed=result["packs_indexed"], index_removed=result["index_removed"])
    return {**result, "flow_run_id": current_flow_run_id()}


@plain_flow(name="repair-snapshots", flow_run_name="repair snapshots", validate_parameters=False)  # see plain_flow
def repair_snapshots_flow(repo: str, read_data: bool = False, dry_run: bool = False,
                          options: dict[str, Any] | None = None, requester: str | None = None) -> dict[str, Any]:
    """Write new snapshots without the files that are lost; remove unreadable snapshots."""
    options = options or {}
    requester = requester or getpass.getuser()
    plan = plan_repair_snapshots(repo, options, read_data)
    if dry_run or not plan["snapshots"]:
        return {**plan, "dry_run": dry_run, "replaced": {}, "removed": [], "flow_run_id": current_flow_run_id()}
    where = display_url(repo)
    with audited("repair", "started", target=where, repo=repo, user=requester,
                 details={"what": "snapshots", "planned": plan["snapshots"]}, options=options) as trail:
        request_approval({
            "kind": "delete", "repo": where, "snapshots": plan["snapshots"], "requester": requester,
            "last_snapshot": plan["remaining"] == 0, "full_with_dependants": False, "bytes_freed": 0,
        }, repo=repo, options=options)
        done = repair_snapshots(repo, options, plan)
        trail.details.update(removed=done["removed"], replaced=done["replaced"])
    return {**plan, **done, "dry_run": False, "flow_run_id": current_flow_run_id()}
