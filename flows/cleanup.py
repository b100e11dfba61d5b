"""The cleanup flow: apply the retention policy (plan -> Guardian approval -> forget -> prune ->
remove archives -> report).

The policy is the ``keep_*`` parameters over ``[backup]`` retention_days and
keep_minimum_count (storage/repository/retention.py says how the rules combine), applied to the
snapshots and to the archives at archive_path, each tier on its own (an archive counts by the
time of the snapshot it holds). A deployment that passes only ``repo`` applies the configured
policy. Deleting is a forget of the snapshots the policy removes and the removal of its
archives, under one Guardian request (see :func:`_approve` for the risk). A dry run plans and
returns; it changes nothing, asks nobody and is not audited. Audited as ``cleanup.requested``,
then ``cleanup.approved``/``cleanup.rejected`` and ``cleanup.completed``/``cleanup.failed``.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

from pydantic import Field

from flows.run_names import rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage import RetentionPolicy
from storage.backend import display_url
from storage.config import load_settings, refuse_when_disabled
from storage.errors import IntegrityError, Locked
from tasks.approval_gate import request_approval
from tasks.audit_events import audited
from tasks.cleanup import (
    configured_policy, plan_archive_cleanup, plan_cleanup, publish_retention_report, remove_archives,
)
from tasks.forget import forget_snapshots, prune_packs

Count = Annotated[int, Field(ge=-1, description="How many to keep; -1 keeps every period, 0 turns the rule off.")]
Within = Annotated[str | None, Field(description="Keep all within this span of the newest snapshot, such as 30d "
                                                 "or 1y2m3d4h.")]
Tags = Annotated[list[str] | None, Field(description="Keep snapshots with all these tags (each entry: tags joined "
                                                     "by commas).")]
Days = Annotated[int | None, Field(ge=0, description="Remove what no rule keeps and is older; default: the config's.")]
Minimum = Annotated[int | None, Field(ge=0, description="Always keep this many newest per source; default: the "
                                                        "config's.")]


ArchivePath = Annotated[str | None, Field(description="Where the archives are; default: the config's archive_path.")]


@plain_flow(name="cleanup", flow_run_name="cleanup", validate_parameters=False)  # see plain_flow
def cleanup_flow(repo: str, keep_last: Count = 0, keep_hourly: Count = 0, keep_daily: Count = 0,
                 keep_weekly: Count = 0, keep_monthly: Count = 0, keep_yearly: Count = 0, keep_within: Within = None,
                 keep_tags: Tags = None, retention_days: Days = None, keep_minimum_count: Minimum = None,
                 dry_run: bool = False, prune: bool = True, archives: bool = True, archive_path: ArchivePath = None,
                 options: dict[str, Any] | None = None, archive_options: dict[str, Any] | None = None,
                 requester: str | None = None, now: str | None = None) -> dict[str, Any]:
    """Apply the retention policy to the snapshots of ``repo`` and, with ``archives``, to the
    archives at ``archive_path`` (default: the config's; none set: snapshots only). ``now``
    (ISO 8601) moves the clock retention_days counts from, for a preview."""
    options, archive_options = options or {}, archive_options or {}
    requester = requester or getpass.getuser()
    settings = load_settings()
    if not dry_run:
        refuse_when_disabled(settings, "clean up snapshots")
    policy = configured_policy(settings, keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
                               keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
                               keep_within=keep_within, keep_tags=keep_tags, retention_days=retention_days,
                               keep_minimum_count=keep_minimum_count)
    dest = (archive_path or settings.backup.archive_path) if archives else None
    if dry_run:
        result = _plan(repo, options, policy, dest, archive_options, now, dry_run=True)
        publish_retention_report(result, display_url(repo))
        rename_run(_run_name(result, display_url(repo)))
        return {**result, "flow_run_id": current_flow_run_id()}
    where = display_url(repo)
    with audited("cleanup", "requested", target=where, repo=repo, user=requester,
                 details={"policy": policy.describe()}, options=options) as trail:
        result = _plan(repo, options, policy, dest, archive_options, now, dry_run=False)
        trail.details.update(planned=result["remove"], bytes_freed=result["bytes_freed"],
                             archives_planned=(result["archives"] or {}).get("remove", []))
        if result["forget"] or (result["archives"] or {}).get("remove"):
            rename_run(_run_name(result, where, waiting=True), now=True)  # the approver sees what would go
            _approve(repo, options, result, requester)
        _delete(repo, options, result, prune)
        if result["archives"] and result["archives"]["remove"]:
            arch = result["archives"]
            arch["removed"] = remove_archives(dest, archive_options, arch["remove"])
        trail.details.update(forgotten=result["forgotten"], pruned=result["prune"],
                             prune_skipped=result.get("prune_skipped"),
                             archives_removed=(result["archives"] or {}).get("removed", []))
        publish_retention_report(result, where)
        rename_run(_run_name(result, where))
        result["flow_run_id"] = current_flow_run_id()
    return result


def _run_name(result: dict[str, Any], where: str, waiting: bool = False) -> str:
    """What the run did, would do (dry run) or asks to do (waiting), for the UI's runs list."""
    arch = result["archives"] or {"remove": [], "removed": []}
    done = not (result["dry_run"] or waiting)
    snaps, archived = (result["forgotten"], arch["removed"]) if done else (result["remove"], arch["remove"])
    verb = "would remove" if result["dry_run"] else "removes" if waiting else "removed"
    kept = sum(d["keep"] for d in result["decisions"])
    return (f"cleanup {where}: {verb} {len(snaps)} snapshot(s)"
            + (f" and {len(archived)} archive(s)" if archived else "") + f", keeps {kept}")


def _plan(repo: str, options: dict[str, Any], policy: RetentionPolicy, dest: str | None,
          archive_options: dict[str, Any], now: str | None, dry_run: bool) -> dict[str, Any]:
    plan = plan_cleanup(repo, options, policy.to_dict(), now)
    kept = sorted({(d["host"], d["source"]) for d in plan["decisions"] if d["keep"]})
    archived = (plan_archive_cleanup(dest, archive_options, policy.to_dict(), [list(k) for k in kept], now)
                if dest else None)
    return {**plan, "policy_text": policy.describe(), "dry_run": dry_run, "forgotten": [], "prune": None,
            "archives": archived}


def _approve(repo: str, options: dict[str, Any], result: dict[str, Any], requester: str) -> None:
    """One Guardian request for both tiers. A policy removes whole chains only (nothing kept
    loses what it needs), so a full going with its dependants is routine here, not the broken
    chain it is in a forget by hand: high risk. Leaving a source without any snapshot in the
    repository, or without any copy at all once its last archives go, is critical."""
    plan = result["forget"] or {"snapshots": [], "last_snapshot": False, "bytes_freed": 0}
    arch = result["archives"] or {"remove": [], "sources_emptied": [], "bytes_freed": 0, "destination": None}
    request_approval({
        "kind": "cleanup", "repo": display_url(repo), "requester": requester,
        "snapshots": plan["snapshots"] + [f"archive:{aid}" for aid in arch["remove"]],
        "last_snapshot": plan["last_snapshot"] or bool(arch["sources_emptied"]),
        "bytes_freed": plan["bytes_freed"] + arch["bytes_freed"], "archives": arch["remove"],
        "destination": arch["destination"],
    }, repo=repo, options=options)


def _delete(repo: str, options: dict[str, Any], result: dict[str, Any], prune: bool) -> None:
    if result["forget"]:
        result["forgotten"] = forget_snapshots(repo, options, result["forget"])["forgotten"]
    if not prune:
        return
    # Also when nothing was due: a run killed after its forget left the data for this prune.
    try:
        result["prune"] = prune_packs(repo, options)
    except (Locked, IntegrityError) as exc:
        # The snapshots are gone either way; their data waits for the next prune (after a
        # running backup ends, or after `backupflow repair` when prune found damage).
        result["prune_skipped"] = exc.message
