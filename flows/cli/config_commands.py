"""``backupflow config check``: the effective configuration, where each value came from (a
default, the config file, or an environment variable), secrets masked by the one rule of
storage.backend.credentials. An invalid file ends as load_settings' sentence (exit 2)."""

from __future__ import annotations

import os
import tomllib
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, emit_json, run_guarded, use_config
from storage.backend import is_secret_name
from storage.config import ALLOWED, Settings, config_path, load_settings

config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# Environment variables that win over a key of the file (the commands read them so).
ENV_OVERRIDES = {
    "backup.repository": "BACKUPFLOW_REPO",
    "backup.backup_path": "BACKUPFLOW_REPO",
    "audit.audit_path": "BACKUPFLOW_AUDIT_PATH",
    "runner.enabled": "BACKUPFLOW_RUNNER",
    "runner.idle_minutes": "BACKUPFLOW_RUNNER_IDLE_MINUTES",
}


# Local paths a command takes from its working folder when relative: workers should give them
# absolute (README: Work pools).
RELATIVE_TO_CWD = {"backup.repository", "backup.backup_path", "backup.archive_path", "audit.audit_path"}


def masked(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: masked(k, v) for k, v in value.items()}
    return "***" if value not in (None, "", [], {}) and is_secret_name(key) else value


def effective(settings: Settings, file_data: dict[str, Any], file_name: str | None) -> dict[str, dict[str, Any]]:
    """{"section.key": {"value", "source"[, "allowed"]}} for every setting."""
    out: dict[str, dict[str, Any]] = {}
    for section, model in settings:
        in_file = file_data.get(section, {})
        for key, value in model:
            name = f"{section}.{key}"
            source = file_name if key in in_file else "default"
            if key in ("repository", "backup_path") and section == "backup" and value and source == "default":
                source = file_name  # given under its other name
            env = ENV_OVERRIDES.get(name)
            if env and os.environ.get(env):
                value, source = os.environ[env], f"environment variable {env}"
            entry: dict[str, Any] = {"value": masked(key, value), "source": source}
            if name in ALLOWED:
                entry["allowed"] = ALLOWED[name]
            if name in RELATIVE_TO_CWD and isinstance(value, str) and "://" not in value and not os.path.isabs(value):
                entry["resolved"] = os.path.abspath(os.path.expanduser(value))  # differs per working folder
            out[name] = entry
    return out


@config_app.command("check")
def check(json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Validate the configuration and print every effective value and where it came from."""
    def go():
        use_config(config)
        settings = load_settings(config)
        path = config_path(config)
        data = tomllib.loads(path.read_text()) if path else {}
        return path, effective(settings, data, str(path) if path else None)
    path, values = run_guarded(go)
    if json_out:
        emit_json({"config_file": str(path) if path else None, "valid": True, "settings": values})
        return
    typer.echo(f"configuration: {path or 'none found (defaults apply)'}: valid")
    table = Table("setting", "value", "from")
    for name, entry in values.items():
        shown = repr(entry["value"]) + (f" (here: {entry['resolved']})" if "resolved" in entry else "")
        table.add_row(name, shown, entry["source"])
    Console(width=160).print(table)
