"""``backupflow workflows show|restore SNAPSHOT``: the Prefect deployments, schedules and
automations a snapshot carries (``include_workflows = true``), listed from the repository or
put back on the Prefect server."""

from __future__ import annotations

from typing import List, Optional

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded
from flows.cli.context import load_flows, open_repository, repo_context

workflows_app = typer.Typer(help="The Prefect deployments and automations a snapshot carries (include_workflows).",
                            no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")
SNAPSHOT = typer.Argument(..., help="Snapshot id, unique prefix, or 'latest'.")


@workflows_app.command("show")
def show(snapshot: str = SNAPSHOT, repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
         json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """List the deployments (with their schedules) and automations a snapshot carries."""
    def go():
        return open_repository(repo, option, config).workflows(snapshot)
    export = run_guarded(go)
    if json_out:
        emit_json(export)
        return
    typer.echo(f"exported {export['exported_at'][:19]}")
    for d in export["deployments"]:
        when = ", ".join(s["schedule"].get("cron") or str(s["schedule"]) for s in d["schedules"]) or "no schedule"
        typer.echo(f"deployment {d['flow_name']}/{d['name']}: {when}")
    for a in export["automations"]:
        typer.echo(f"automation {a['name']}")


@workflows_app.command("restore")
def restore(snapshot: str = SNAPSHOT, repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Create again (or replace, by name) the deployments and automations a snapshot carries,
    on the Prefect server (PREFECT_API_URL, or the local one)."""
    def go():
        url, opts, _ = repo_context(repo, option, config)
        runner, flows = load_flows()
        return runner.run_flow(flows.restore_workflows_flow, url, opts, False, snapshot=snapshot)
    result = run_guarded(go)
    if json_out:
        emit_json(result)
        return
    typer.echo(f"put back {len(result['deployments'])} deployment(s) ({', '.join(result['deployments']) or 'none'}) "
               f"and {len(result['automations'])} automation(s) of snapshot {result['snapshot_id'][:8]}")
    for why in result.get("skipped", []):
        typer.echo(f"warning: not put back: {why}", err=True)
