"""A file's history: ``backupflow history PATH`` (every snapshot in which it changed, and its
explicit versions) and ``backupflow versions add|list|tag|show|diff|restore``.

Reading commands read the repository directly, without Prefect; ``add``, ``tag`` and
``restore`` go through the Python API's VersioningEngine (audited; a restore that overwrites a
file asks Guardian).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, fail, run_guarded
from flows.cli.context import open_repository, repo_context
from storage.errors import InvalidInput
from storage.sizes import human_bytes
from storage.versions import Version

versions_app = typer.Typer(help="Per-file version history kept in the repository.", no_args_is_help=True)
app.add_typer(versions_app, name="versions")

FILE_ARG = typer.Argument(..., help="The file (its absolute path names its history).")
VERSION_ARG = typer.Argument(..., help="A version id, number, tag, or 'latest'.")


def _path(file: str) -> str:
    return os.path.abspath(os.path.expanduser(file))


def _engine(repo, option, config, writing: str):
    """The VersioningEngine (Prefect is loaded only for the commands that write)."""
    url, opts, settings = repo_context(repo, option, config, writing=writing)
    configured = importlib.import_module("flows.configured")
    versioning = importlib.import_module("flows.versioning")
    return versioning.VersioningEngine(configured.Target(url, opts, settings))


def _console() -> Console:
    """Wide enough for whole ids when the output goes to a file or a pipe (rich assumes 80)."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _row(v: Version) -> list[str]:
    return [str(v.number), v.version_id, v.timestamp.isoformat()[:19], v.author, human_bytes(v.size),
            v.content_hash[:12], ",".join(v.tags), v.message]


@app.command()
def history(path: str = typer.Argument(..., help="A file: its absolute path, or its path inside the snapshots."),
            repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Every snapshot in which a file was added, changed or deleted, and its explicit versions."""
    def go():
        where = _path(path) if os.path.isabs(os.path.expanduser(path)) or os.path.exists(path) else path
        with open_repository(repo, option, config) as r:
            return where, r.file_history(where), r.versions().get_versions(_path(path))
    where, changes, versions = run_guarded(go)
    if json_out:
        emit_json({"path": where, "snapshots": [c.to_dict() for c in changes],
                   "versions": [v.to_dict() for v in versions]})
        return
    if not changes and not versions:
        fail(f"No snapshot and no version holds {where}; `backupflow ls latest` shows what the last backup has.", 3)
    rows = [(c.time, "snapshot", c.snapshot[:8], c.change, human_bytes(c.size), (c.sha256 or "")[:12], "")
            for c in changes]
    rows += [(v.timestamp.isoformat(), "version", v.version_id, f"by {v.author}" if v.author else "",
              human_bytes(v.size), v.content_hash[:12], " ".join([v.message] + [f"[{t}]" for t in v.tags]).strip())
             for v in versions]
    table = Table("time", "kind", "snapshot / version", "change", "size", "sha256", "message / tags",
                  title=f"History of {where}")
    for row in sorted(rows, key=lambda r: r[0]):
        table.add_row(row[0][:19], *row[1:])
    _console().print(table)


@versions_app.command("add")
def add(file: str = FILE_ARG, author: str = typer.Option("", "--author", help="Who (default: you)."),
        message: str = typer.Option("", "--message", "-m", help="What changed."),
        tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag the new version (repeatable)."),
        repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
        json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Store the file's current content as its next version."""
    def go():
        target = _path(file)
        try:
            with open(target, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise InvalidInput(f"Cannot read {file} ({exc.strerror or exc}); give a readable file.") from None
        with _engine(repo, option, config, "add a version") as engine:
            return engine.create_version(target, content, author, message, list(tag or []))
    v = run_guarded(go)
    if json_out:
        emit_json(v.to_dict())
        return
    parent = f", parent {v.parent_id}" if v.parent_id else ""
    typer.echo(f"Added version {v.version_id} of {v.file_path} ({human_bytes(v.size)}{parent}).")


@versions_app.command("list")
def list_versions(file: str = FILE_ARG, repo: Optional[str] = REPO_OPTION,
                  option: Optional[List[str]] = OPTION_OPTION, json_out: bool = JSON_OPTION,
                  config: Optional[str] = CONFIG_OPTION) -> None:
    """The file's versions, oldest first."""
    def go():
        with open_repository(repo, option, config) as r:
            return r.versions().get_versions(_path(file))
    versions = run_guarded(go)
    if json_out:
        emit_json({"path": _path(file), "versions": [v.to_dict() for v in versions]})
        return
    if not versions:
        fail(f"{_path(file)} has no versions; `backupflow versions add {file}` makes one.", 3)
    table = Table("#", "id", "time", "author", "size", "sha256", "tags", "message")
    for v in versions:
        table.add_row(*_row(v))
    _console().print(table)


@versions_app.command("tag")
def tag_version(file: str = FILE_ARG, version: str = VERSION_ARG,
                tag: str = typer.Argument(..., help="The tag, such as v1.0 (moves if it named another version)."),
                repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
                json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Tag a version."""
    def go():
        with _engine(repo, option, config, "tag a version") as engine:
            return engine.tag_version(_path(file), version, tag)
    v = run_guarded(go)
    if json_out:
        emit_json(v.to_dict())
        return
    typer.echo(f"Tagged version {v.version_id} of {v.file_path} as {tag}.")


@versions_app.command("show")
def show(file: str = FILE_ARG, version: str = VERSION_ARG,
         content: bool = typer.Option(False, "--content", help="Write the version's content to stdout instead."),
         repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
         json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """One version: who, when, why, its parent and tags (or its content)."""
    def go():
        with open_repository(repo, option, config) as r:
            store = r.versions()
            v = store.get_version(_path(file), version)
            return v, store.get_content(v) if content else None
    v, data = run_guarded(go)
    if data is not None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if json_out:
        emit_json(v.to_dict())
        return
    for key, value in v.to_dict().items():
        typer.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@versions_app.command("diff")
def diff(file: str = FILE_ARG, a: str = typer.Argument(..., help="The older version (id, number, tag)."),
         b: str = typer.Argument("latest", help="The newer version (default: latest)."),
         repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
         json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """A unified diff between two versions (one line for binary content)."""
    def go():
        with open_repository(repo, option, config) as r:
            store = r.versions()
            va, vb = store.get_version(_path(file), a), store.get_version(_path(file), b)
            return va, vb, store.diff(va, vb)
    va, vb, text = run_guarded(go)
    if json_out:
        emit_json({"a": va.version_id, "b": vb.version_id, "identical": not text, "diff": text})
        return
    typer.echo(text or f"Versions {va.version_id} and {vb.version_id} have the same content.", nl=not text)


@versions_app.command("restore")
def restore(file: str = FILE_ARG, version: str = VERSION_ARG,
            to: Optional[str] = typer.Option(None, "--to", help="Write here instead of over the file itself."),
            repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION) -> None:
    """Write a version back; overwriting a file with other content asks Guardian first (exit 11 if rejected)."""
    def go():
        with _engine(repo, option, config, "restore a version") as engine:
            v = engine.get_version(_path(file), version)
            return v, engine.restore_version(_path(file), v.version_id, _path(to) if to else None)
    v, done = run_guarded(go)
    target = _path(to) if to else v.file_path
    if json_out:
        emit_json({"version_id": v.version_id, "target": target, "restored": done})
    elif done:
        typer.echo(f"Restored version {v.version_id} to {target}.")
    if not done:
        fail(f"The restore of version {v.version_id} over {target} was not approved; nothing was written.", 11)
