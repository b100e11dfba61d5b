"""The typer application object and the error boundary shared by every command."""

from __future__ import annotations

import os

import typer

# Quiet defaults for Prefect in a CLI process, set before anything imports Prefect; the user's
# own environment wins. (The runner applies them to each client's environment too.)
QUIET_PREFECT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # A failed run must end as one sentence on stderr: Prefect's console handler would print
    # the task and flow failure with a full traceback first. Logs still reach the API (the UI).
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    # Prefect's client retries a server that stopped answering 5 times, 2+4+8+16+32 s per call:
    # a backup whose server died took 160 s to end. The engine's work does not wait on the
    # server, and its outcome is reported without it (flows.cli.server_loss): one retry, 2 s.
    "PREFECT_CLIENT_MAX_RETRIES": "1",
    # Prefect's services log every item they could not send, whole, when the server is gone;
    # the command says so once itself.
    "PREFECT_INTERNAL_LOGGING_LEVEL": "CRITICAL",
}
for _key, _value in QUIET_PREFECT_ENV.items():
    os.environ.setdefault(_key, _value)

app = typer.Typer(
    name="backupflow",
    help="Deduplicated, verifiable backups orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(no_runner: bool = typer.Option(
        False, "--no-runner",
        help="Run a backup, restore, verify, forget or prune in this process instead of the resident runner "
             "(also: BACKUPFLOW_RUNNER=off, or [runner] enabled = false in the config). "
             "It may stand anywhere."),
             password_file: str = typer.Option(None, "--password-file", help=(
                 "File whose first line is the repository's password (then BACKUPFLOW_PASSWORD_FILE, "
                 "BACKUPFLOW_PASSWORD, the config's password_command or password_secret_block, a prompt). "
                 "It may stand anywhere."))) -> None:
    """Deduplicated, verifiable backups orchestrated by Prefect."""

# Called with the exit code when a command ends; a hook may end the process itself (see
# flow_runner.fast_exit). Empty unless a command that runs a flow was used.
EXIT_HOOKS: list = []
