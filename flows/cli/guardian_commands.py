"""Approval commands: approve, reject, pending."""

from __future__ import annotations

import importlib
import os

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, emit_json, run_guarded, use_config
from storage.config import load_settings


def get_guardian():
    # Loaded on use, not at import: flows.approvals needs Prefect, whose import costs over a
    # second that every other command (snapshots, ls, ...) must not pay.
    return importlib.import_module("flows.approvals").get_guardian()

REASON_OPTION = typer.Option("", "--reason", help="Why (recorded in the audit log).")
AS_OPTION = typer.Option(None, "--as", help="Approver name (default: the name the policy lists for --key, "
                         "else your OS user); checked against the policy.")
KEY_OPTION = typer.Option(None, "--key", help="Your ed25519 private key (e.g. ~/.ssh/id_ed25519); signs the "
                          "decision. Default: [approver] key in the config, or BACKUPFLOW_APPROVER_KEY.")


def _answer(approved: bool, run_id: str, as_: str | None, reason: str, key: str | None, config: str | None) -> dict:
    use_config(config)
    settings = run_guarded(load_settings, config)
    key = key or os.environ.get("BACKUPFLOW_APPROVER_KEY") or settings.approver.key
    guardian = get_guardian()
    return run_guarded(guardian.approve if approved else guardian.reject, run_id, as_, reason, key)


def _signed(result: dict) -> str:
    return f" (signed with {result['signed_with']})" if result.get("signed_with") else ""


def _report(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    run, who = result["run_id"], result["approver"]
    if result["decision"] == "rejected":
        typer.echo(f"Rejected run {run} as {who}; it ends as rejected and changes nothing.")
    elif result["status"] == "approved":
        typer.echo(f"Approved run {run} as {who}{_signed(result)}; the {result['summary']} goes ahead.")
    else:
        more = result["approvals_needed"] - len(result["approved_by"])
        typer.echo(f"Approval from {who}{_signed(result)} recorded for run {run}; "
                   f"{more} more from someone else is needed.")


@app.command()
def approve(run_id: str = typer.Argument(..., help="The paused flow run (see `backupflow pending`)."),
            reason: str = REASON_OPTION, as_: str = AS_OPTION, key: str = KEY_OPTION,
            as_json: bool = JSON_OPTION, config: str = CONFIG_OPTION) -> None:
    """Approve an operation waiting for a decision."""
    _report(_answer(True, run_id, as_, reason, key, config), as_json)


@app.command()
def reject(run_id: str = typer.Argument(..., help="The paused flow run (see `backupflow pending`)."),
           reason: str = REASON_OPTION, as_: str = AS_OPTION, key: str = KEY_OPTION,
           as_json: bool = JSON_OPTION, config: str = CONFIG_OPTION) -> None:
    """Reject an operation waiting for a decision; it ends as rejected and changes nothing."""
    _report(_answer(False, run_id, as_, reason, key, config), as_json)


def _crash_dead_runs() -> None:
    """A run whose backupflow process died waits for nobody: mark it Crashed, not pending."""
    try:
        importlib.import_module("flows.crashed_runs").mark_crashed_runs()
    except Exception:  # housekeeping only; pending itself reports a server that does not answer
        pass


@app.command()
def pending(as_json: bool = JSON_OPTION, config: str = CONFIG_OPTION) -> None:
    """List the runs waiting for an approval decision."""
    use_config(config)
    _crash_dead_runs()
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
