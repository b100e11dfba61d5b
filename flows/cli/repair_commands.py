"""``backupflow repair index`` and ``backupflow repair snapshots`` (flows/repair.py)."""

from __future__ import annotations

from typing import List, Optional

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded
from flows.cli.context import load_flows, repo_context

repair_app = typer.Typer(help="Rebuild what damage took, from what is still whole.", no_args_is_help=True)
app.add_typer(repair_app, name="repair")


def _ids(ids: list[str]) -> str:
    return ", ".join(i[:8] for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


@repair_app.command("index")
def repair_index(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
                 json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Re-index every pack from its own header; delete damaged index objects."""
    def go():
        url, opts, _ = repo_context(repo, option, config, writing="repair the index")
        runner, flows = load_flows()
        out = runner.run_flow(flows.repair_index_flow, url, opts, not json_out)
        if json_out:
            emit_json(out)
            return
        typer.echo(f"re-indexed {out['packs_indexed']} pack(s) from their headers; wrote "
                   f"{len(out['index_written'])} and removed {len(out['index_removed'])} index object(s)")
        for pack in out["packs_unreadable"]:
            typer.echo(f"warning: pack {pack[:12]} has a damaged header and was not indexed", err=True)
    run_guarded(go)


@repair_app.command("snapshots")
def repair_snapshots(read_data: bool = typer.Option(False, "--read-data",
                                                    help="Also read every pack to find damaged chunks."),
                     dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; change nothing."),
                     repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
                     json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Write new snapshots without the files that are lost; remove unreadable snapshots
    (after Guardian approval when policy says so)."""
    def go():
        url, opts, _ = repo_context(repo, option, config, writing=None if dry_run else "repair snapshots")
        runner, flows = load_flows()
        out = runner.run_flow(flows.repair_snapshots_flow, url, opts, not json_out, read_data=read_data,
                              dry_run=dry_run)
        if json_out:
            emit_json(out)
            return
        if not out["snapshots"]:
            typer.echo("no snapshot needs repair")
            return
        lost = sum(len(v) for v in out["rewrite"].values())
        verb = "would rewrite" if out["dry_run"] else "rewrote"
        typer.echo(f"{verb} {len(out['rewrite'])} snapshot(s) ({_ids(sorted(out['rewrite']))}) without {lost} lost "
                   f"file(s); {'would remove' if out['dry_run'] else 'removed'} {len(out['remove'])} unreadable "
                   f"snapshot(s) ({_ids(sorted(out['remove']))})" + ("; nothing was changed" if out["dry_run"] else ""))
    run_guarded(go)
