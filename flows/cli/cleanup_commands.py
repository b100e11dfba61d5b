"""Cleanup commands: forget snapshots (with Guardian approval) and prune unneeded data.

Both run as Prefect flows (flows/forget.py); each prints one sentence, or one JSON object with
``--json``; a refusal (dependants not named, a backup running) is one sentence and a non-zero
exit code.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded
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
