"""What every CLI command shares: repository and option resolution, JSON output, errors.

Every failure a user can cause ends as one sentence on stderr and a non-zero exit code taken
from the error class; never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import typer

from storage.audit import log_config_error
from storage.errors import BackupError, InvalidConfig

REPO_OPTION = typer.Option(None, "--repo", "-r", help="Repository URL (or set BACKUPFLOW_REPO).")
OPTION_OPTION = typer.Option(None, "--option", "-o", help="fsspec option key=value (repeatable).")
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
CONFIG_OPTION = typer.Option(None, "--config", help="Config file (default: BACKUPFLOW_CONFIG or config/config.toml).")


def use_config(config: str | None) -> None:
    """Make ``--config`` this process's configuration, for the command and every flow, task and
    approval step it runs (they read it with ``load_settings()``), as BACKUPFLOW_CONFIG would."""
    if config:
        os.environ["BACKUPFLOW_CONFIG"] = config


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"backupflow: {message}", err=True)
    raise typer.Exit(code)


def resolve_repo(repo: str | None, config_repo: str | None = None) -> str:
    url = repo or os.environ.get("BACKUPFLOW_REPO") or config_repo
    if not url:
        raise InvalidConfig("No repository given; pass --repo URL or set BACKUPFLOW_REPO.")
    return url


def parse_options(pairs: list[str] | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = dict(base or {})
    for pair in pairs or []:
        if "=" not in pair:
            raise InvalidConfig(f"--option {pair!r} is not key=value; write it as --option key=value.")
        key, value = pair.split("=", 1)
        low = value.lower()
        out[key.strip()] = True if low == "true" else False if low == "false" else value
    return out


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def warn_damaged(damaged: dict[str, str]) -> None:
    """One line on stderr per snapshot left out because its manifest cannot be read."""
    for sid, why in sorted(damaged.items()):
        typer.echo(f"warning: skipped snapshot {sid[:8]}: {why} (`backupflow repair snapshots` or "
                   f"`backupflow forget {sid[:8]}` removes it)", err=True)


def run_guarded(fn, *args, **kwargs):
    """Call fn; turn our errors into one sentence and an exit code."""
    try:
        return fn(*args, **kwargs)
    except BackupError as exc:
        if isinstance(exc, InvalidConfig):
            log_config_error(exc.message)  # configuration errors are on the audit record too
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; nothing that was already backed up was changed.", 130)
