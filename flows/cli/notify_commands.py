"""``backupflow notify setup``: Prefect automations that notify through a notification block
(tasks/automations.py)."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import typer

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, emit_json, run_guarded, use_config
from storage.config import load_settings
from storage.errors import InvalidInput, ServerUnreachable

notify_app = typer.Typer(help="Be told when a run fails, a verify finds damage, an approval waits or a backup is "
                              "missed.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest gap each [backup] backup_frequency allows between successful backups, plus a margin.
MISSED_AFTER = {"hourly": "2h", "daily": "26h", "weekly": "8d"}


def parse_duration(text: str, option: str = "--missed-after") -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(f"{option} {text!r} is not a duration; write it as 26h, 90m, 2d or 600s.")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@notify_app.command("setup")
def setup(block: str = typer.Option(..., "--block", help=(
              "The Prefect notification block to send to (Slack, email, a webhook...): its name, or TYPE/NAME "
              "such as custom-webhook/ops when several types use the name.")),
          missed_after: str = typer.Option(None, "--missed-after", help=(
              "Tell when a source has had no successful backup for this long. Default: what the config's "
              "backup_frequency allows plus a margin (hourly 2h, daily 26h, weekly 8d).")),
          crash_after: str = typer.Option("9m", "--crash-after", help=(
              "Set Crashed a run on a worker that sent no heartbeat for this long (its machine died); keep it "
              "above three of the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY (Prefect's default: 180 s).")),
          json_out: bool = JSON_OPTION, config: str = CONFIG_OPTION):
    """Create or update the automations: a run Failed or Crashed, a verify found damage, an approval
    waits, a missed backup; and runs whose worker died become Crashed. Running it again updates
    them; it never makes copies."""
    use_config(config)

    def go():
        window = parse_duration(missed_after or MISSED_AFTER[load_settings().backup.backup_frequency])
        crashed = parse_duration(crash_after, "--crash-after")
        if crashed < timedelta(seconds=10):
            raise InvalidInput("--crash-after must be at least 10s (Prefect's least window); keep it above three "
                               "heartbeat intervals.")
        if not os.environ.get("PREFECT_API_URL"):
            raise InvalidInput("notify setup needs the Prefect server that runs your backups: set PREFECT_API_URL "
                               "(e.g. http://127.0.0.1:4200/api).")
        import flows
        from tasks import automations
        from tasks.prefect_api import is_server_failure

        names = [getattr(flows, name).name for name in flows.__all__]
        try:
            block_id = automations.notification_block_id(block)
            done = automations.ensure([*automations.notification_automations(names, block_id, window),
                                       automations.unresponsive_runs(names, crashed)])
        except Exception as exc:
            if is_server_failure(exc):
                raise ServerUnreachable(f"The Prefect server at {os.environ['PREFECT_API_URL']} did not answer; "
                                        "start it or fix PREFECT_API_URL, then run this again.") from None
            raise
        if json_out:
            emit_json({"block": block, "automations": dict(done)})
            return
        for name, what in done:
            typer.echo(f"{what}: {name}")
    run_guarded(go)
