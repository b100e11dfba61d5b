"""Cleanup commands: forget snapshots (with Guardian approval), prune unneeded data, and apply
the retention policy (`cleanup`).

Each runs as a Prefect flow (flows/forget.py, flows/cleanup.py) and prints one sentence (cleanup:
its table first), or one JSON object with ``--json``; a refusal (dependants not named, a backup
running, a policy to fix) is one sentence and a non-zero exit code.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from flows.cli.app import app
from flows.cli.archive_commands import destination
from flows.cli.common import (
    CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded, warn_damaged,
)
from flows.cli.context import load_flows, repo_context
from storage.sizes import human_bytes

DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Show what would be deleted; change nothing.")


def _ids(ids: list[str]) -> str:
    return ", ".join(i[:8] for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _pruned(report: dict) -> str:
    kept, partial = report["packs_kept_live"], report.get("temporaries_deleted", 0)
    return (f"{report['packs_deleted']} pack(s)"
            + (f" and {partial} half-written object(s) of killed backups" if partial else "")
            + (f" and {report['leases_removed']} stale lease(s)" if report.get("leases_removed") else "")
            + f", {human_bytes(report['bytes_freed'])}"
            + (f" ({kept} pack(s) of running backups kept)" if kept else ""))


@app.command()
def forget(snapshots: List[str] = typer.Argument(..., help="Snapshot ids or unique id prefixes."),
           prune: bool = typer.Option(False, "--prune", help="Then delete the data no snapshot needs any more."),
           chain: bool = typer.Option(False, "--chain", help="Also forget every snapshot that depends on a named one "
                                                            "(for a full: its whole chain)."),
           dry_run: bool = DRY_RUN_OPTION, repo: Optional[str] = REPO_OPTION,
           option: Optional[List[str]] = OPTION_OPTION, json_out: bool = JSON_OPTION,
           config: Optional[str] = CONFIG_OPTION):
    """Delete snapshots as a Prefect flow run, after Guardian approval when policy says so."""
    def go():
        url, opts, _ = repo_context(repo, option, config, writing=None if dry_run else "forget snapshots")
        runner, flows = load_flows()
        result = runner.run_flow(flows.forget_flow, url, opts, not json_out, snapshots=list(snapshots),
                                 prune=prune, chain=chain, dry_run=dry_run)
        if json_out:
            emit_json(result)
            return
        n = len(result["snapshots"])
        if result["dry_run"]:
            typer.echo(f"would forget {n} snapshot(s) ({_ids(result['snapshots'])}), freeing "
                       f"{human_bytes(result['bytes_freed'])} once pruned; nothing was changed")
        elif result.get("prune"):
            typer.echo(f"forgot {n} snapshot(s) ({_ids(result['forgotten'])}); pruned {_pruned(result['prune'])}")
        elif result.get("prune_skipped"):
            typer.echo(f"forgot {n} snapshot(s) ({_ids(result['forgotten'])}); not pruned: {result['prune_skipped']}")
        else:
            typer.echo(f"forgot {n} snapshot(s) ({_ids(result['forgotten'])}); run `backupflow prune` to free "
                       f"{human_bytes(result['bytes_freed'])}")
    run_guarded(go)


@app.command("prune")
def prune_command(dry_run: bool = DRY_RUN_OPTION, repo: Optional[str] = REPO_OPTION,
                  option: Optional[List[str]] = OPTION_OPTION, json_out: bool = JSON_OPTION,
                  config: Optional[str] = CONFIG_OPTION):
    """Delete the data that no snapshot and no running backup needs (refuses while a backup runs)."""
    def go():
        url, opts, _ = repo_context(repo, option, config, writing=None if dry_run else "prune")
        runner, flows = load_flows()
        report = runner.run_flow(flows.prune_flow, url, opts, not json_out, dry_run=dry_run)
        if json_out:
            emit_json(report)
        elif report["dry_run"]:
            typer.echo(f"would delete {_pruned(report)}; nothing was changed")
        else:
            typer.echo(f"pruned {_pruned(report)}")
    run_guarded(go)


def _table(decisions: list[dict]) -> str:
    """Every snapshot, newest first per source: keep or remove, and the rules that decided."""
    head = ("SNAPSHOT", "TYPE", "TIME", "HOST", "SOURCE", "DECISION", "REASON")
    rows = [(d["short_id"], d.get("type", ""), d["time"][:19].replace("T", " "), d["host"], d["source"],
             "keep" if d["keep"] else "remove", "; ".join(d["reasons"])) for d in decisions]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
                     for r in [head, *rows])


def _cleanup_summary(result: dict) -> str:
    freed = human_bytes(result["bytes_freed"])
    if result["dry_run"]:
        return (f"would remove {len(result['remove'])} snapshot(s) and keep "
                f"{sum(d['keep'] for d in result['decisions'])}, freeing {freed} once pruned; nothing was changed")
    gone = result["forgotten"]
    if not gone:
        pruned = result.get("prune")
        return "removed nothing: the policy keeps every snapshot" + (
            f"; pruned {_pruned(pruned)} that an interrupted run left" if pruned and pruned["packs_deleted"] else "")
    if result.get("prune"):
        return f"removed {len(gone)} snapshot(s) ({_ids(gone)}); pruned {_pruned(result['prune'])}"
    if result.get("prune_skipped"):
        return f"removed {len(gone)} snapshot(s) ({_ids(gone)}); not pruned: {result['prune_skipped']}"
    return f"removed {len(gone)} snapshot(s) ({_ids(gone)}); run `backupflow prune` to free {freed}"


def _archive_summary(arch: dict, dry_run: bool) -> str:
    freed = human_bytes(arch["bytes_freed"])
    if dry_run:
        return f"would remove {len(arch['remove'])} archive(s), {freed}; nothing was changed"
    if not arch["removed"]:
        return "removed no archive: the policy keeps every one"
    return f"removed {len(arch['removed'])} archive(s) ({_ids(arch['removed'])}), {freed}"


def _count(name: str, what: str):
    return typer.Option(0, f"--keep-{name}", help=f"Keep the {what} (-1: all of them).", show_default=False)


@app.command()
def cleanup(dry_run: bool = typer.Option(False, "--dry-run", help="Show every snapshot with keep/remove and why, "
                                                                   "and the bytes a prune would free; change nothing."),
            keep_last: int = _count("last", "N newest snapshots"),
            keep_hourly: int = _count("hourly", "newest snapshot of each of the last N hours that have one"),
            keep_daily: int = _count("daily", "newest snapshot of each of the last N days that have one"),
            keep_weekly: int = _count("weekly", "newest snapshot of each of the last N ISO weeks that have one"),
            keep_monthly: int = _count("monthly", "newest snapshot of each of the last N months that have one"),
            keep_yearly: int = _count("yearly", "newest snapshot of each of the last N years that have one"),
            keep_within: Optional[str] = typer.Option(None, "--keep-within", help="Keep every snapshot within this "
                                                      "span of the newest one, such as 30d or 1y2m3d4h."),
            keep_tag: Optional[List[str]] = typer.Option(None, "--keep-tag", help="Keep snapshots with this tag "
                                                         "(tags joined by commas: all of them); repeatable."),
            retention_days: Optional[int] = typer.Option(None, "--retention-days", help="Remove what no rule keeps "
                                                         "and is older than this many days (default: the config's)."),
            keep_minimum: Optional[int] = typer.Option(None, "--keep-minimum", help="Always keep this many newest "
                                                       "snapshots per source (default: keep_minimum_count)."),
            no_prune: bool = typer.Option(False, "--no-prune", help="Forget only; leave the data to "
                                          "`backupflow prune`."),
            archive_path: Optional[str] = typer.Option(None, "--archive-path", help="Apply the policy to the archives "
                                                       "there too (default: archive_path in the config)."),
            archive_option: Optional[List[str]] = typer.Option(None, "--archive-option", help="fsspec option "
                                                               "key=value of the archive destination."),
            no_archives: bool = typer.Option(False, "--no-archives", help="Leave the archives alone."),
            repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Apply the retention policy: the --keep-* rules over the config's retention_days and
    keep_minimum_count, per host and source, chains kept whole; after Guardian approval, then prune."""
    def go():
        url, opts, settings = repo_context(repo, option, config, writing=None if dry_run else "clean up snapshots")
        dest, dest_opts = (destination(archive_path, archive_option, config)
                           if not no_archives and (archive_path or settings.backup.archive_path) else (None, {}))
        runner, flows = load_flows()
        result = runner.run_flow(
            flows.cleanup_flow, url, opts, not json_out, keep_last=keep_last, keep_hourly=keep_hourly,
            keep_daily=keep_daily, keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
            keep_within=keep_within, keep_tags=list(keep_tag or []), retention_days=retention_days,
            keep_minimum_count=keep_minimum, dry_run=dry_run, prune=not no_prune, archives=dest is not None,
            archive_path=dest, archive_options=dest_opts)
        if json_out:
            emit_json(result)
            return
        warn_damaged(result["damaged"])
        typer.echo(f"policy: {result['policy_text']}")
        typer.echo(_table(result["decisions"]) if result["decisions"] else "no snapshots")
        arch = result.get("archives")
        if arch:
            typer.echo(f"archives at {arch['destination']}:")
            typer.echo(_table(arch["decisions"]) if arch["decisions"] else "no archives")
        typer.echo(_cleanup_summary(result))
        if arch:
            typer.echo(_archive_summary(arch, result["dry_run"]))
    run_guarded(go)
