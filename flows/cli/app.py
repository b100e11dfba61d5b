"""The typer application object and the error boundary shared by every command."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="backupflow",
    help="Deduplicated, verifiable backups orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
