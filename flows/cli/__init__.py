"""The ``backupflow`` command. Each command group lives in its own module and registers itself
on :data:`flows.cli.app.app`; this module imports them all and provides ``main``."""

from __future__ import annotations

import sys

from flows.cli import audit_commands, cleanup_commands, guardian_commands, repo_commands  # noqa: F401  (register commands)
from flows.cli.app import EXIT_HOOKS, app
from storage.errors import BackupError


def main() -> None:
    code: int | str | None = 0
    try:
        app()
    except BackupError as exc:  # last line of defence; commands normally report themselves
        sys.stderr.write(f"backupflow: {exc.message}\n")
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code
    for hook in EXIT_HOOKS:
        hook(code)
    sys.exit(code)


__all__ = ["app", "main"]
