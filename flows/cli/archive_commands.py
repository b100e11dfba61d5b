"""Archive commands: ``archive`` (a flow: old snapshots to the archive tier), ``archives`` (lists
them, read-only, without Prefect), and the archive side of ``restore archive:ID`` and
``verify --archives`` (flows, called from repo_commands).

The destination is ``--to``/``--from`` URL or ``archive_path`` in the config; its options come
from ``--to-option``/``--from-option`` (credentials from the environment, as for repositories).
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.app import app
from flows.cli.common import CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, parse_options, \
    run_guarded, use_config
from flows.cli.context import load_flows, repo_context
from storage.archive import archives_in
from storage.backend import check_option_names, check_repository_url, display_url, open_backend, scheme_of
from storage.backend import refuse_option_credentials, refuse_url_credentials
from storage.config import load_settings
from storage.errors import InvalidConfig
from storage.sizes import human_bytes

ARCHIVE_PREFIX = "archive:"  # `restore archive:ID TARGET`
TO_OPTION_OPTION = typer.Option(None, "--to-option", help="fsspec option key=value of the archive destination.")
FROM_OPTION = typer.Option(None, "--from", help="Archive destination URL (default: archive_path in the config).")
FROM_OPTION_OPTION = typer.Option(None, "--from-option", help="fsspec option key=value of the archive destination.")


def destination(url: str | None, option: list[str] | None, config: str | None) -> tuple[str, dict[str, Any]]:
    """The archive destination and its options: the flag, else ``archive_path``."""
    use_config(config)
    dest = url or load_settings(config).backup.archive_path
    if not dest:
        raise InvalidConfig("No archive destination is set; pass --to URL (--from URL to read) or set archive_path "
                            "in [backup].")
    check_repository_url(dest, persistent=True)
    if scheme_of(dest) == "file":
        # the runner may run in another folder: a relative path means this command's folder
        dest = os.path.abspath(os.path.expanduser(dest.removeprefix("file://")))
    refuse_url_credentials(dest)
    opts = parse_options(option)
    refuse_option_credentials(opts)
    check_option_names(dest, opts)
    return dest, opts


class _OnDestination:
    """A flow whose ``to``/``to_options`` play the part of ``repo``/``options`` for the CLI's
    flow runner (which keeps their secrets out of the run's parameters the same way)."""

    def __init__(self, flow: Any):
        self.flow, self.name = flow, flow.name

    def __call__(self, repo: str, options: dict[str, Any], **params: Any) -> Any:
        return self.flow(to=repo, to_options=options, **params)


@app.command()
def archive(older_than: Optional[str] = typer.Option(None, "--older-than",
                                                     help="Archive snapshots older than this, e.g. 30d, 12h, 2w "
                                                          "(default: archive_threshold_days)."),
            keep: Optional[int] = typer.Option(None, "--keep", help="Keep the N newest snapshots of each source "
                                                                   "(default: keep_minimum_count)."),
            to: Optional[str] = typer.Option(None, "--to", help="Archive destination URL (default: archive_path)."),
            to_option: Optional[List[str]] = TO_OPTION_OPTION,
            storage_class: Optional[str] = typer.Option(None, "--storage-class",
                                                        help="S3 class (GLACIER_IR, DEEP_ARCHIVE...), Azure tier "
                                                             "(Cool, Archive...) or GCS class (ARCHIVE...)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be archived; change nothing."),
            repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Move old snapshots to the archive tier as .tar.gz files (a Prefect flow run), then forget them."""
    def go():
        url, opts, _ = repo_context(repo, option, config, writing=None if dry_run else "archive snapshots")
        dest, dest_opts = destination(to, to_option, config)
        runner, flows = load_flows()
        result = runner.run_flow(flows.archive_flow, url, opts, not json_out, to=dest, to_options=dest_opts,
                                 older_than=older_than, keep=keep, storage_class=storage_class, dry_run=dry_run)
        if json_out:
            emit_json(result)
            return
        _say_archived(result)
    run_guarded(go)


def _say_archived(result: dict[str, Any]) -> None:
    ids = ", ".join(s[:8] for s in result["snapshots"][:10]) or "none"
    n, where = len(result["snapshots"]), result["destination"]
    if result["dry_run"]:
        typer.echo(f"would archive {n} snapshot(s) ({ids}) to {where}, {human_bytes(result['bytes'])} of files; "
                   "nothing was changed")
    else:
        typer.echo(f"archived {n} snapshot(s) ({ids}) to {where} and forgot them from the repository")
        if result.get("prune_skipped"):
            typer.echo(f"not pruned: {result['prune_skipped']}", err=True)
    for sid, why in sorted(result["skipped"].items()):
        typer.echo(f"kept {sid[:8]}: {why}")


@app.command()
def archives(frm: Optional[str] = FROM_OPTION, from_option: Optional[List[str]] = FROM_OPTION_OPTION,
             json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """List the archives at the archive destination with their metadata, oldest snapshot first."""
    def go():
        dest, opts = destination(frm, from_option, config)
        metas, damaged = archives_in(open_backend(dest, opts))
        for aid, why in sorted(damaged.items()):
            typer.echo(f"warning: skipped archive {aid[:8]}: {why}", err=True)
        if json_out:
            emit_json({"destination": display_url(dest), "archives": [m.to_dict() for m in metas],
                       **({"damaged": damaged} if damaged else {})})
            return
        table = Table("id", "time", "type", "files", "size", "class", "source")
        for m in metas:
            table.add_row(m.id[:8], m.time[:19], m.type, str(m.files), human_bytes(m.bytes), m.storage_class or "",
                          m.source)
        Console().print(table)
    run_guarded(go)


def restore_from_archive(ref: str, target: str, frm: str | None, from_option: list[str] | None,
                         config: str | None, json_out: bool) -> dict[str, Any]:
    """``restore archive:ID TARGET``: the restore-archive flow (Guardian approval as any restore)."""
    dest, opts = destination(frm, from_option, config)
    runner, flows = load_flows()
    return runner.run_flow(_OnDestination(flows.restore_archive_flow), dest, opts, not json_out,
                           archive=ref, target=os.path.abspath(os.path.expanduser(target)))


def verify_archives(frm: str | None, from_option: list[str] | None, config: str | None,
                    json_out: bool) -> dict[str, Any]:
    """``verify --archives``: every archive's hash against its metadata (a flow run)."""
    dest, opts = destination(frm, from_option, config)
    runner, flows = load_flows()
    return runner.run_flow(_OnDestination(flows.verify_archives_flow), dest, opts, not json_out)
