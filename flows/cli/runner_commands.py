"""``backupflow runner status|stop`` and ``backupflow serve``: the resident runner seen and
steered from the command line (deployments/runner.py is the runner itself; this module starts
it by name and never imports it)."""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

import typer

from flows.cli import runner_client
from flows.cli import runner_protocol as wire
from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, emit_json, fail, run_guarded
from storage.config import load_settings, refuse_when_disabled
from storage.errors import InvalidConfig

runner_app = typer.Typer(help="Show or stop the resident runner (and the local Prefect server it started).",
                         no_args_is_help=True)
app.add_typer(runner_app, name="runner")


@runner_app.command("status")
def status(json_out: bool = JSON_OPTION) -> None:
    """Whether a runner is up, since when, what it is doing and where its Prefect UI is."""
    reply = runner_client.control("status")
    if reply is None or reply.get("type") != "status":
        out = {"running": False, "socket": str(wire.runner_file("sock"))}
        emit_json(out) if json_out else typer.echo("No backupflow runner is running; the next backup, restore, "
                                                   "verify, forget or prune starts one.")
        return
    out = {"running": True, **{k: v for k, v in reply.items() if k != "type"}, "socket": str(wire.runner_file("sock"))}
    if json_out:
        emit_json(out)
        return
    up = int(time.time() - float(reply["started"]))
    typer.echo(f"runner pid {reply['runner_pid']}, up {up // 3600}h{up % 3600 // 60:02d}m, "
               f"{reply['commands_running']} command(s) running"
               + (", serving the schedules" if reply["serving_schedules"] else
                  f", stops after {reply['idle_minutes']:g} min without a command"))
    typer.echo(f"Prefect API: {reply['prefect_api_url']}" + (f"   UI: {reply['ui_url']}" if reply["ui_url"] else ""))
    typer.echo(f"socket: {out['socket']}")


@runner_app.command("stop")
def stop(json_out: bool = JSON_OPTION) -> None:
    """Stop the runner and the local Prefect server it started; commands in flight end as if
    interrupted with Ctrl-C (nothing already backed up is changed)."""
    reply = runner_client.control("stop")
    stopped = bool(reply and reply.get("type") == "stopping")
    pid = reply.get("runner_pid") if reply else None
    if stopped and isinstance(pid, int) and not runner_client.wait_gone(pid):
        fail(f"the runner (pid {pid}) did not stop within 90 s; end it with `kill {pid}`.", 1)
    if json_out:
        emit_json({"stopped": stopped, "runner_pid": pid})
    elif stopped:
        typer.echo(f"Stopped the backupflow runner (pid {pid}) and its local Prefect server.")
    else:
        typer.echo("No backupflow runner was running.")


@app.command()
def serve(source: Optional[str] = typer.Option(None, "--source", help="Directory the scheduled backup backs up "
                                               "(default: backup.source in the config)."),
          repo: Optional[str] = typer.Option(None, "--repo", "-r", help="Repository URL (or set BACKUPFLOW_REPO, "
                                             "or backup_path in the config)."),
          config: Optional[str] = CONFIG_OPTION) -> None:
    """Serve the scheduled backup, archive, cleanup, verify and prune in the foreground, in the
    resident runner (which also runs the CLI's commands meanwhile); their times come from the
    configuration (README: Schedules). Ctrl-C or SIGTERM stops it."""
    def where() -> tuple[str | None, str]:
        if config:  # the runner and every run it serves read the same file
            os.environ["BACKUPFLOW_CONFIG"] = os.path.abspath(config)
        settings = load_settings(config)
        refuse_when_disabled(settings, "serve the schedules")
        b = settings.backup
        url = repo or os.environ.get("BACKUPFLOW_REPO") or b.repository
        folder = source or b.source
        if not url:
            raise InvalidConfig("No repository given; pass --repo URL, set BACKUPFLOW_REPO or backup_path "
                                "in the config.")
        if b.auto_backup_enabled and not folder:
            raise InvalidConfig("No folder to back up; pass --source DIR or set source in the config's [backup] "
                                "(or auto_backup_enabled = false to serve no backup).")
        if b.auto_backup_enabled and not os.path.isdir(os.path.expanduser(folder)):
            raise InvalidConfig(f"{folder} is not a directory; pass the folder to back up as --source.")
        return folder, url
    folder, url = run_guarded(where)
    if "://" not in url:  # the scheduled runs must find a local repository from any folder
        url = os.path.abspath(os.path.expanduser(url))
    reply = runner_client.control("status")
    if reply and reply.get("type") == "status":
        if reply.get("serving_schedules"):
            fail(f"a backupflow runner (pid {reply['runner_pid']}) already serves the schedules; "
                 "stop it with `backupflow runner stop` first.", 7)
        runner_client.retire(reply)
    cmd = [sys.executable, "-m", "deployments.runner", "--serve", "--idle-minutes", "0", "--repo", url]
    if folder:
        cmd += ["--source", os.path.abspath(os.path.expanduser(folder))]
    sys.stdout.flush()
    os.execv(sys.executable, cmd)
