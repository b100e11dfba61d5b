"""``backupflow key list|add|remove|passwd``: the key files of an encrypted repository.

Each key file wraps the repository's one master key under one password (docs/FORMAT.md,
"encryption"); any of them opens the repository. The command opens it with the password
from the usual sources (tasks/passwords.py); a new password comes from
``--new-password-file`` or is typed twice at the terminal. Removing the last key is refused:
nobody could open the repository again. Every change is an audit event (ids, never a password).
"""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded
from flows.cli.context import open_repository
from flows.cli.password_prompt import new_password
from storage import Repository
from storage.audit import AuditLog
from storage.backend import display_url
from storage.config import load_settings

key_app = typer.Typer(help="List, add, remove or change the passwords (key files) of an encrypted repository.",
                      no_args_is_help=True)
app.add_typer(key_app, name="key")

NEW_PASSWORD_FILE = typer.Option(None, "--new-password-file",
                                 help="File whose first line is the new password (else it is typed twice).")


def _audit(repo: Repository, event: str, details: dict) -> None:
    AuditLog(load_settings().audit_path).log_event(event, target=display_url(repo.url), details=details,
                                                    outcome="ok")


@key_app.command("list")
def list_keys(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
              json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """The repository's keys; * marks the one your password opened."""
    def go():
        with open_repository(repo, option, config) as r:
            return [{"id": k.id, "short_id": k.id[:8], "created": k.created, "host": k.host, "user": k.user,
                     "label": k.label, "kdf": k.kdf, "in_use": k.in_use} for k in r.keys.list()]
    keys = run_guarded(go)
    if json_out:
        emit_json({"keys": keys})
        return
    table = Table("", "id", "created", "user@host", "label")
    for k in keys:
        table.add_row("*" if k["in_use"] else "", k["short_id"], k["created"][:19], f"{k['user']}@{k['host']}",
                      k["label"])
    Console().print(table)


@key_app.command("add")
def add(label: str = typer.Option("", "--label", help="A note shown by `key list` (whose key it is)."),
        new_password_file: Optional[str] = NEW_PASSWORD_FILE,
        repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
        json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Add a key: a second password that opens the repository too."""
    def go():
        with open_repository(repo, option, config) as r:
            keys = r.keys  # an unencrypted repository is said so before a password is asked for
            key_id = keys.add(new_password(new_password_file, "the new key"), label or None)
            _audit(r, "key.added", {"key": key_id, "label": label})
            return key_id
    key_id = run_guarded(go)
    if json_out:
        emit_json({"added": key_id})
    else:
        typer.echo(f"added key {key_id[:8]}")


@key_app.command("remove")
def remove(key_id: str = typer.Argument(..., help="Id (or unique prefix) of the key, from `backupflow key list`."),
           repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
           json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Remove a key: its password no longer opens the repository. The last key is never removed."""
    def go():
        with open_repository(repo, option, config) as r:
            full = r.keys.resolve(key_id)
            r.keys.remove(full)
            _audit(r, "key.removed", {"key": full})
            return full
    full = run_guarded(go)
    if json_out:
        emit_json({"removed": full})
    else:
        typer.echo(f"removed key {full[:8]}")


@key_app.command("passwd")
def passwd(new_password_file: Optional[str] = NEW_PASSWORD_FILE,
           repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
           json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Change the password of the key in use (the old password stops working)."""
    def go():
        with open_repository(repo, option, config) as r:
            old = r.keys.in_use
            new = r.keys.passwd(new_password(new_password_file, "this key"))
            _audit(r, "key.changed", {"old_key": old, "new_key": new})
            return old, new
    old, new = run_guarded(go)
    if json_out:
        emit_json({"old": old, "new": new})
    else:
        typer.echo(f"changed the password: key {old[:8]} is now key {new[:8]}")
