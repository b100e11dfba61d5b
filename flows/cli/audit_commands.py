"""The audit command: query, summarise and verify the audit log."""

from __future__ import annotations

import importlib
import json
import os

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, emit_json, fail, run_guarded, use_config
from flows.cli.context import open_at_terminal, repo_context, with_secret_block
from storage.audit import Anchor, AuditLog, cross_check, mirror_anchors
from storage.config import Settings, load_settings
from storage.errors import IntegrityError


@app.command()
def audit(event_type: str = typer.Option(None, "--type", help="Event type, or its prefix (e.g. restore)."),
          user: str = typer.Option(None, "--user", help="Only events by this user."),
          since: str = typer.Option(None, "--since", help="A date, ISO time, or age like 24h or 7d."),
          limit: int = typer.Option(None, "--limit", help="Only the newest N events."),
          summary: bool = typer.Option(False, "--summary", help="Counts by type, user and outcome."),
          verify: bool = typer.Option(False, "--verify", help="Check the hash chain; non-zero exit if broken."),
          repo: str = typer.Option(None, "--repo", "-r", help="With --verify: the repository holding the "
                                   "mirrored events (default: BACKUPFLOW_REPO or the config's)."),
          option: list[str] = OPTION_OPTION,
          as_json: bool = JSON_OPTION, config: str = CONFIG_OPTION) -> None:
    """Show, summarise or verify the audit log."""
    use_config(config)
    settings = run_guarded(load_settings, config)
    log = AuditLog(settings.audit_path)
    if verify:
        _verify(log, settings, repo, option, config, as_json)
        return
    if summary:
        _summarise(log, since, as_json)
        return
    events = run_guarded(log.get_events, event_type=event_type, user=user, since=since, limit=limit)
    if as_json:
        emit_json({"events": events, "count": len(events)})
        return
    if not events:
        typer.echo("No matching audit events.")
    for e in events:
        line = f"{e['time']}  {e['type']:22} {e['user']:10} {e.get('outcome') or '-':9} {e.get('target') or ''}"
        if e.get("flow_run_id"):
            line += f"  run {e['flow_run_id']}"
        typer.echo(line)
        if e.get("details"):
            typer.echo(f"    {json.dumps(e['details'], sort_keys=True, default=str)[:300]}")


def _anchors(log: AuditLog, settings: Settings, repo: str | None, option: list[str] | None,
             config: str | None) -> tuple[list[Anchor], list[str]]:
    """The anchors of this log that can be read, and where they were looked for."""
    anchors: list[Anchor] = []
    checked = []
    if os.environ.get("PREFECT_API_URL"):
        # Loaded only here: Prefect's import costs a second that the other audit uses skip.
        found = importlib.import_module("tasks.audit_events").prefect_anchors(log.log_id)
        anchors += found
        checked.append(f"{len(found)} in the Prefect server")
    if repo or os.environ.get("BACKUPFLOW_REPO") or settings.backup.repository:
        url, opts, _ = repo_context(repo, option, config)
        repository = open_at_terminal(url, with_secret_block(opts))  # an encrypted one's events are sealed
        try:
            found = mirror_anchors(repository.backend, log.log_id, repository.sealer)
        finally:
            repository.close()
        anchors += found
        checked.append(f"{len(found)} in the repository")
    return anchors, checked


def _verify(log: AuditLog, settings: Settings, repo: str | None, option: list[str] | None,
            config: str | None, as_json: bool) -> None:
    report = log.verify()
    anchors, checked = run_guarded(_anchors, log, settings, repo, option, config)
    report.problems += cross_check(log.get_events(), anchors)
    if as_json:
        emit_json({"path": str(log.directory), "anchors_checked": checked, **report.to_dict()})
    elif report.ok:
        where = ("checked against anchors: " + ", ".join(checked)) if checked else (
            "no anchors were checked (set PREFECT_API_URL or --repo): a rewritten or deleted log "
            "cannot be told from an intact one without them")
        typer.echo(f"Audit log intact: {report.events} events in {report.files} day files ({log.directory}); {where}.")
    else:
        for problem in report.problems:
            typer.echo(f"{problem}", err=True)
    if not report.ok:
        if as_json:
            raise typer.Exit(IntegrityError.exit_code)
        fail(f"the audit log in {log.directory} was tampered with or damaged: {report.problems[0]}.",
             IntegrityError.exit_code)


def _summarise(log: AuditLog, since: str | None, as_json: bool) -> None:
    result = run_guarded(log.get_event_summary, since)
    if as_json:
        emit_json(result)
        return
    typer.echo(f"{result['total']} events from {result['first']} to {result['last']}")
    for title, key in (("by type", "by_type"), ("by user", "by_user"), ("by outcome", "by_outcome")):
        if result[key]:
            typer.echo(f"{title}:")
            for name, count in sorted(result[key].items(), key=lambda kv: (-kv[1], kv[0])):
                typer.echo(f"  {count:6}  {name}")
