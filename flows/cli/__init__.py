"""The ``backupflow`` command. Each command group lives in its own module and registers itself
on :data:`flows.cli.app.app`; this module imports them all and provides ``main``."""

from __future__ import annotations

import sys

from flows.cli.app import app
from flows.cli import repo_commands  # noqa: F401  (registers commands)
from storage.errors import BackupError

for _name in ("guardian_commands", "audit_commands"):
    try:
        __import__(f"flows.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command group not written yet
        if _exc.name != f"flows.cli.{_name}":
            raise


def main() -> None:
    try:
        app()
    except BackupError as exc:  # last line of defence; commands normally report themselves
        sys.stderr.write(f"backupflow: {exc.message}\n")
        sys.exit(exc.exit_code)


__all__ = ["app", "main"]
