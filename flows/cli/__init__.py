"""The ``backupflow`` command. Each command group lives in its own module and registers itself
on :data:`flows.cli.app.app`; this module imports them all and provides ``main``."""

from __future__ import annotations

import sys

from flows.cli import audit_commands, guardian_commands, repo_commands  # noqa: F401  (register commands)
from flows.cli.app import app
from storage.errors import BackupError


def main() -> None:
    try:
        app()
    except BackupError as exc:  # last line of defence; commands normally report themselves
        sys.stderr.write(f"backupflow: {exc.message}\n")
        sys.exit(exc.exit_code)


__all__ = ["app", "main"]
