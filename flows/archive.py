"""The archive flows: move old snapshots to the archive tier, restore from an archive, and
check every archive.

archive:  select -> for each snapshot: export (streamed to the destination) -> verify (read
          back) -> publish (metadata, the commit point) -> Guardian approval -> forget -> prune

A snapshot is forgotten only after its archive was read back, matched and published; a run
killed anywhere loses nothing, and a rerun finds the published archives (and rewrites any
unpublished one under the same name) so it finishes the work without a second copy. A dry
run selects and returns; it changes nothing, asks nobody and is not audited.
"""

from __future__ import annotations

import getpass
from typing import Any

from flows.run_names import home_short, rename_run
from flows.runtime import current_flow_run_id, plain_flow
from storage.archive import parse_age
from storage.backend import display_url, refuse_option_credentials
from storage.backend.streams import check_storage_class
from storage.config import gzip_level, load_settings, refuse_when_disabled
from storage.errors import IntegrityError, InvalidConfig, Locked, RestoreIncomplete
from tasks.approval_gate import request_approval
from tasks.archive import (
    export_archive, extract_archive, plan_archive_restore, publish_archive_report, publish_archive_task,
    select_snapshots, verify_archive, verify_archives,
)
from tasks.audit_events import audited, record
from tasks.forget import forget_snapshots, plan_forget, prune_packs
from tasks.reports import publish_stats


def archive_destination(to: str | None) -> str:
    """``to``, else ``archive_path`` from the config; InvalidConfig when neither is set."""
    dest = to or load_settings().backup.archive_path
    if not dest:
        raise InvalidConfig("No archive destination is set; pass --to URL or set archive_path in [backup].")
    return dest


@plain_flow(name="archive", flow_run_name="archive {repo}", validate_parameters=False)  # see plain_flow
def archive_flow(repo: str, to: str | None = None, older_than: str | None = None, keep: int | None = None,
                 storage_class: str | None = None, dry_run: bool = False, options: dict[str, Any] | None = None,
                 to_options: dict[str, Any] | None = None, requester: str | None = None) -> dict[str, Any]:
    """Archive the snapshots of ``repo`` older than ``older_than`` (e.g. "30d"; default
    archive_threshold_days) beyond the ``keep`` newest of each source (default
    keep_minimum_count) to ``to`` (default archive_path), in ``storage_class`` where the
    destination has classes; then forget them and prune."""
    settings = load_settings()
    b = settings.backup
    options, to_options = options or {}, to_options or {}
    refuse_option_credentials(to_options)
    dest = archive_destination(to)
    days = parse_age(older_than if older_than is not None else b.archive_threshold_days)
    keep = b.keep_minimum_count if keep is None else keep
    storage_class = check_storage_class(dest, storage_class)
    level = gzip_level(b.compression_level)
    plan = select_snapshots(repo, options, dest, to_options, days, keep)
    plan.update(destination=display_url(dest), storage_class=storage_class, compression_level=level)
    if dry_run:
        return {**plan, "dry_run": True, "published": [], "forgotten": [], "flow_run_id": current_flow_run_id()}
    refuse_when_disabled(settings, "archive snapshots")
    requester = requester or getpass.getuser()
    with audited("archive", "started", target=display_url(dest), repo=repo, user=requester, options=options,
                 details={"snapshots": plan["snapshots"], "destination": display_url(dest)}) as trail:
        result = _archive_and_forget(repo, options, dest, to_options, plan, level, storage_class, requester)
        trail.details.update(published=[m["id"] for m in result["published"]], forgotten=result["forgotten"],
                             pruned=result.get("prune"), prune_skipped=result.get("prune_skipped"))
        publish_archive_report(result, display_url(dest))
        publish_stats(repo, options, archive_at=dest, archive_options=to_options)
    moved = result["snapshots"]
    rename_run(f"archive {len(moved)} snapshot(s) " + (f"({', '.join(s[:8] for s in moved[:5])}) " if moved else "")
               + f"to {display_url(dest)}")
    result["flow_run_id"] = current_flow_run_id()
    return result


def _archive_and_forget(repo: str, options: dict[str, Any], dest: str, to_options: dict[str, Any],
                        plan: dict[str, Any], level: int, storage_class: str | None, requester: str) -> dict[str, Any]:
    published = []
    for sid in plan["snapshots"]:
        if sid in plan["archived"]:
            continue  # published by an earlier run that was stopped before it forgot
        written = export_archive(repo, options, dest, to_options, sid, level, storage_class)
        verify_archive(repo, options, dest, to_options, written)
        meta = publish_archive_task(repo, options, dest, to_options, written, level, storage_class)
        record("archive.published", target=display_url(dest), user=requester, repo=repo, options=options,
               details={"snapshot": sid, "file": meta["file"], "sha256": meta["sha256"], "bytes": meta["bytes"]},
               outcome="success")
        published.append(meta)
    result: dict[str, Any] = {**plan, "dry_run": False, "published": published, "forgotten": [], "prune": None}
    if plan["snapshots"]:
        forget = plan_forget(repo, options, plan["snapshots"], True, False)
        request_approval({
            "kind": "archive", "repo": display_url(repo), "destination": display_url(dest), "requester": requester,
            "snapshots": forget["snapshots"], "last_snapshot": forget["last_snapshot"],
            "bytes_freed": forget["bytes_freed"],
        }, repo=repo, options=options)
        result["forgotten"] = forget_snapshots(repo, options, forget)["forgotten"]
    # Also when nothing was due: a run killed after its forget left the data for this prune.
    try:
        result["prune"] = prune_packs(repo, options)
    except (Locked, IntegrityError) as exc:
        # The snapshots are archived and forgotten either way; their data goes with the next prune.
        result["prune_skipped"] = exc.message
    return result


@plain_flow(name="restore-archive", flow_run_name="restore archive {archive} to {target}",
            validate_parameters=False)  # see plain_flow
def restore_archive_flow(archive: str, target: str, to: str | None = None, to_options: dict[str, Any] | None = None,
                         requester: str | None = None) -> dict[str, Any]:
    """Restore the archive ``archive`` (id or unique prefix) at ``to`` (default archive_path)
    into ``target``, after Guardian approval as any restore."""
    dest, to_options = archive_destination(to), to_options or {}
    refuse_option_credentials(to_options)
    requester = requester or getpass.getuser()
    # repo="": the events are not mirrored into the destination, which is not a repository
    with audited("restore", "requested", target=target, repo="", user=requester,
                 details={"archive": archive, "destination": display_url(dest)}) as trail:
        plan = plan_archive_restore(dest, to_options, archive, target)
        rename_run(f"restore archive:{plan['archive'][:8]} -> {home_short(plan['target'])}", now=True)
        request_approval({
            "kind": "restore", "repo": display_url(dest), "snapshot": f"archive:{plan['archive'][:8]}",
            "target": plan["target"], "requester": requester, "target_exists": plan["target_exists"],
            "target_empty": plan["target_empty"],
            "preview": {"create": plan["create"], "overwrite": plan["overwrite"], "bytes": plan["bytes"]},
        }, repo=None, options=to_options)
        result = extract_archive(dest, to_options, plan["archive"], plan["target"])
        result["overwritten"] = len(plan["overwrite"])
        result["flow_run_id"] = current_flow_run_id()
        trail.details.update(archive=plan["archive"], files=result["files"], bytes=result["bytes"],
                             not_restored=sorted(result["not_restored"]))
        if result["not_restored"]:
            raise RestoreIncomplete.of(result)
    return result


@plain_flow(name="verify-archives", flow_run_name="verify archives {to}", validate_parameters=False)  # see plain_flow
def verify_archives_flow(to: str | None = None, to_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check every archive at ``to`` (default archive_path) against its recorded SHA-256."""
    dest = archive_destination(to)
    report = verify_archives(dest, to_options or {})
    report["destination"] = display_url(dest)
    report["flow_run_id"] = current_flow_run_id()
    if not report["ok"]:
        raise IntegrityError(f"{len(report['problems'])} of {report['archives']} archive(s) at {display_url(dest)} "
                             "are damaged: " + "; ".join(f"{aid[:8]}: {why}" for aid, why in
                                                          sorted(report["problems"].items())[:5]) + ".",
                             details=report)
    return report
