"""The ``backupflow`` command. Each command group lives in its own module and registers itself
on :data:`flows.cli.app.app`; :func:`load_commands` imports them all.

:func:`main` first offers the command line to the resident runner (flows.cli.runner_client,
standard library only): commands that run a flow then never import Prefect, typer or pydantic
here. Everything else, and every command when the runner is off or cannot start, runs in this
process (:func:`run_in_process`), which is also what the runner runs for a client.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time

from flows.cli import runner_client

COMMAND_MODULES = ("archive_commands", "audit_commands", "cleanup_commands", "config_commands", "guardian_commands",
                   "key_commands", "policy_commands", "repair_commands", "repo_commands", "runner_commands",
                   "workflows_commands")
COMMAND_MODULES += ("version_commands",)
COMMAND_MODULES += ("notify_commands",)


def load_commands():
    """The typer app with every command registered. Costs about half a second (typer, rich,
    pydantic), which the way to the runner never pays."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"flows.cli.{name}")
    return importlib.import_module("flows.cli.app")


@functools.cache
def app_command():
    """The click command typer makes of the app (built from every command's signature, ~25 ms;
    typer's ``app()`` would build it again on each call)."""
    return importlib.import_module("typer.main").get_command(load_commands().app)


def run_in_process() -> None:
    # The first-contact time of cloud storage counts from here, as the person waiting does.
    os.environ["BACKUPFLOW_COMMAND_STARTED"] = repr(time.time())  # storage.backend.base.command_started
    app_module = load_commands()
    errors = importlib.import_module("storage.errors")
    code: int | str | None = 0
    try:
        # --password-file may stand anywhere: taken off here, for every command (password_prompt)
        sys.argv = [sys.argv[0], *importlib.import_module("flows.cli.password_prompt").take_password_file(
            sys.argv[1:])]
        app_command()()
    except errors.BackupError as exc:  # last line of defence; commands normally report themselves
        sys.stderr.write(f"backupflow: {exc.message}\n")
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code
    for hook in app_module.EXIT_HOOKS:
        hook(code)
    sys.exit(code)


def main() -> None:
    argv = sys.argv[1:]
    code = runner_client.delegate(argv)
    if code is not None:
        sys.exit(code)
    sys.argv = [sys.argv[0], *runner_client.without_flag(argv)]
    run_in_process()


__all__ = ["app_command", "load_commands", "main", "run_in_process"]
