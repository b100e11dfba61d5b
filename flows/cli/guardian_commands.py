"""Approval commands: approve, reject, pending."""

from __future__ import annotations

import importlib

import typer

from flows.cli.app import app
from flows.cli.common import JSON_OPTION, emit_json, run_guarded


def get_guardian():
    # Loaded on use, not at import: flows.approvals needs Prefect, whose import costs over a
    # second that every other command (snapshots, ls, ...) must not pay.
    return importlib.import_module("flows.approvals").get_guardian()

REASON_OPTION = typer.Option("", "--reason", help="Why (recorded in the audit log).")
AS_OPTION = typer.Option(None, "--as", help="Approver name (default: your OS user); checked against the policy.")


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    run, who = result["run_id"], result["approver"]
    if result["decision"] == "rejected":
        typer.echo(f"Rejected run {run} as {who}; it ends as rejected and changes nothing.")
    elif result["status"] == "approved":
        typer.echo(f"Approved run {run} as {who}; the {result['summary']} goes ahead.")
    else:
        more = result["approvals_needed"] - len(result["approved_by"])
        typer.echo(f"Approval from {who} recorded for run {run}; {more} more from someone else is needed.")


@app.command()
def approve(run_id: str = typer.Argument(..., help="The paused flow run (see `backupflow pending`)."),
            reason: str = REASON_OPTION, as_: str = AS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Approve an operation waiting for a decision."""
    _report(run_guarded(get_guardian().approve, run_id, as_, reason), as_json)


@app.command()
def reject(run_id: str = typer.Argument(..., help="The paused flow run (see `backupflow pending`)."),
           reason: str = REASON_OPTION, as_: str = AS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Reject an operation waiting for a decision; it ends as rejected and changes nothing."""
    _report(run_guarded(get_guardian().reject, run_id, as_, reason), as_json)


@app.command()
def pending(as_json: bool = JSON_OPTION) -> None:
    """List the runs waiting for an approval decision."""
    runs = run_guarded(get_guardian().pending)
    if as_json:
        emit_json({"pending": runs})
        return
    if not runs:
        typer.echo("No run is waiting for approval.")
        return
    for run in runs:
        typer.echo(f"{run['run_id']}  {(run['risk'] or '?').upper():8}  requested by {run['requester'] or '?'}"
                   f"  since {run['paused_since']}  expires {run['expires'] or 'never'}")
        typer.echo(f"    {run['summary'] or run['run_name']}" + (f": {run['reason']}" if run["reason"] else ""))
        if run["approvals_needed"] and run["approvals_needed"] > 1:
            typer.echo(f"    approvals: {len(run['approved_by'])} of {run['approvals_needed']}"
                       + (f" ({', '.join(run['approved_by'])})" if run["approved_by"] else ""))
        typer.echo(f"    backupflow approve {run['run_id']} --reason ...   |   "
                   f"backupflow reject {run['run_id']} --reason ...")
        if run["ui_url"]:
            typer.echo(f"    {run['ui_url']}")
