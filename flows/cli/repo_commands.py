"""Repository commands: init, backup, snapshots, ls, diff, restore, verify, export, stats.

Read-only commands open the repository directly and never import Prefect, so they answer in
well under two seconds. Commands that change data run as Prefect flows (flow_runner).
"""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.app import app
from flows.cli.common import (CONFIG_OPTION, JSON_OPTION, OPTION_OPTION, REPO_OPTION, emit_json, run_guarded,
                              warn_damaged)
from flows.cli.archive_commands import (ARCHIVE_PREFIX, FROM_OPTION, FROM_OPTION_OPTION, restore_from_archive,
                                        verify_archives)
from flows.cli.context import load_flows, open_repository, read_password_block, repo_context, with_secret_block
from flows.cli.password_prompt import ENCRYPTION_HELP, check_encryption, no_repository_yet, password_for_new
from storage import Repository
from storage.backend import display_url, ensure_container
from storage.config import zstd_level
from storage.errors import IncompleteSnapshot, InvalidConfig, RestoreIncomplete
from storage.snapshots import require_text, shown
from storage.sizes import human_bytes
from tasks.passwords import unencrypted_notice


@app.command()
def init(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
         compression: Optional[int] = typer.Option(None, help="0-9: 0 stores, 9 is smallest (default: the config's "
                                                   "compression_level, 3); zstd levels in README: Configuration."),
         encryption: str = typer.Option("on", "--encryption", help=ENCRYPTION_HELP),
         json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Create a repository at an empty location (encrypted unless --encryption none)."""
    def go():
        url, opts, settings = repo_context(repo, option, config, writing="create a repository")
        plain = check_encryption(encryption) == "none"
        level = settings.backup.compression_level if compression is None else compression
        if not 0 <= level <= 9:
            raise InvalidConfig(f"--compression {level} is not a compression level; give 0-9 "
                                "(0 = stored, 9 = smallest).")
        ensure_container(url, opts)
        password = None if plain else password_for_new(url, read_password_block)
        r = Repository.init(url, opts, compression_level=zstd_level(level), pack_size_mib=settings.backup.pack_size_mib,
                            password=password)
        out = {"repository": display_url(url), "id": r.config.id, "version": r.config.version,
               "compression_level": level, "zstd_level": zstd_level(level), "encrypted": r.encrypted}
        if not r.encrypted:
            typer.echo(f"warning: {unencrypted_notice(display_url(url))}", err=True)
        if json_out:
            emit_json(out)
        else:
            kind = "encrypted" if r.encrypted else "unencrypted"
            typer.echo(f"created {kind} backupflow repository {r.config.id[:8]} at {display_url(url)}")
            if r.encrypted:
                typer.echo("keep its password safe: without it, nothing in the repository can be read again")
    run_guarded(go)


@app.command()
def backup(source: str = typer.Argument(..., help="Directory to back up."),
           repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
           type: Optional[str] = typer.Option(None, "--type", "-t", help="full, incremental or differential "
                                              "(default: incremental when a chain exists, else full)."),
           exclude: Optional[List[str]] = typer.Option(None, "--exclude", "-e", help="Glob to leave out (repeatable)."),
           tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag for the snapshot (repeatable)."),
           description: str = typer.Option("", "--description", "-m"),
           upload_limit: Optional[str] = typer.Option(None, "--upload-limit", help='Bandwidth cap, e.g. "20MiB/s".'),
           encryption: str = typer.Option("on", "--encryption", help="For a first backup, which creates the "
                                          "repository: " + ENCRYPTION_HELP),
           json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Back up SOURCE as a Prefect flow run (creates the repository in an empty location)."""
    def go():
        url, opts, settings = repo_context(repo, option, config, upload_limit=upload_limit, writing="back up")
        plain = check_encryption(encryption) == "none"
        creates_plain = plain and no_repository_yet(url, with_secret_block(opts))
        # Names inside the source may be any bytes (stored exactly); the arguments themselves
        # become flow-run parameters, which Prefect records as UTF-8 text.
        require_text(source, "The source path", "back up a folder above it, whose path is UTF-8")
        for text in [*(exclude or []), *(tag or []), description]:
            require_text(text, "The argument", "give it as UTF-8 text")
        runner, flows = load_flows()
        result = runner.run_flow(
            flows.backup_flow, url, opts, not json_out, source=source, type=type,
            excludes=list(settings.backup.exclude) + list(exclude or []), tags=list(tag or []),
            description=description, compression_level=zstd_level(settings.backup.compression_level),
            connections=settings.backup.connections, pack_size_mib=settings.backup.pack_size_mib,
            encryption="none" if plain else "on",
        )
        if creates_plain:
            typer.echo(f"warning: {unencrypted_notice(display_url(url))}", err=True)
        if json_out:
            emit_json({**result, **result["stats"]})
        else:
            s = result["stats"]
            typer.echo(f"snapshot {result['short_id']} ({result['type']}) saved: {s['files']} files, "
                       f"{human_bytes(s['bytes_read'])} read, {human_bytes(s['bytes_added'])} added "
                       f"in {result['duration_seconds']} s")
            left = s.get("leftovers_removed")
            if left:
                typer.echo(f"removed what killed runs left: {left['leases_removed']} stale lease(s), "
                           f"{left['temporaries_deleted']} half-written temporary file(s)")
            for w in result["warnings"]:
                typer.echo(f"warning: {w}", err=True)
        if result["incomplete"]:
            where = "under incomplete" if json_out else "in the warnings"
            raise IncompleteSnapshot(f"snapshot {result['short_id']} is incomplete: "
                                     f"{len(result['incomplete'])} item(s) could not be read (named {where}); "
                                     "make them readable and back up again.")
    run_guarded(go)


@app.command()
def snapshots(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
              json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """List snapshots, oldest first."""
    def go():
        store = open_repository(repo, option, config).snapshots
        snaps = [s.summary() for s in store.all()]
        warn_damaged(store.damaged)
        if json_out:
            emit_json({"snapshots": snaps, **({"damaged": store.damaged} if store.damaged else {})})
            return
        table = Table("id", "time", "type", "parent", "files", "size", "source")
        for s in snaps:
            table.add_row(s["short_id"], s["time"][:19], s["type"], (s["parent"] or "")[:8],
                          str(s["stats"].get("files", "")), human_bytes(s["stats"].get("bytes_total")), s["source"])
        Console().print(table)
    run_guarded(go)


@app.command()
def ls(snapshot: str = typer.Argument(..., help="Snapshot id, unique prefix, or 'latest'."),
       path: Optional[str] = typer.Argument(None, help="Only entries at or below this path."),
       repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
       json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """List the files of a snapshot."""
    def go():
        r = open_repository(repo, option, config)
        snap = r.snapshot(snapshot)
        entries = r.ls(snap.id, path)
        if json_out:
            emit_json({"snapshot_id": snap.id, "entries": entries})
            return
        for e in entries:
            extra = f" -> {shown(e['target'])}" if "target" in e else f" => {shown(e['link'])}" if "link" in e else ""
            typer.echo(f"{e['type'][0]} {e['mode']:04o} {e.get('size', 0):>12} {shown(e['path'])}{extra}")
    run_guarded(go)


@app.command()
def diff(snapshot_a: str, snapshot_b: str, repo: Optional[str] = REPO_OPTION,
         option: Optional[List[str]] = OPTION_OPTION, json_out: bool = JSON_OPTION,
         config: Optional[str] = CONFIG_OPTION):
    """Show what changed between two snapshots."""
    def go():
        d = open_repository(repo, option, config).diff(snapshot_a, snapshot_b).to_dict()
        if json_out:
            emit_json(d)
            return
        for mark, key in (("+", "added"), ("-", "removed"), ("M", "modified")):
            for p in d[key]:
                typer.echo(f"{mark} {shown(p)}")
        typer.echo(f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['modified'])} modified")
    run_guarded(go)


@app.command()
def restore(snapshot: str = typer.Argument(..., help="Snapshot id, unique prefix, or 'latest'."),
            target: str = typer.Argument(..., help="Directory to restore into."),
            include: Optional[List[str]] = typer.Option(None, "--include", "-i", help="Only this path (repeatable)."),
            repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
            download_limit: Optional[str] = typer.Option(None, "--download-limit",
                                                         help='Bandwidth cap, e.g. "50MiB/s".'),
            frm: Optional[str] = FROM_OPTION, from_option: Optional[List[str]] = FROM_OPTION_OPTION,
            json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Restore a snapshot (or archive:ID from the archive tier) into TARGET as a Prefect flow run
    (asks for approval when policy says so)."""
    def go():
        try:
            if snapshot.startswith(ARCHIVE_PREFIX):
                result = restore_from_archive(snapshot[len(ARCHIVE_PREFIX):], target, frm, from_option, config,
                                              json_out)
            else:
                url, opts, settings = repo_context(repo, option, config, download_limit=download_limit)
                runner, flows = load_flows()
                result = runner.run_flow(flows.restore_flow, url, opts, not json_out, snapshot=snapshot,
                                         target=target, include=list(include or []) or None,
                                         connections=settings.backup.connections)
        except RestoreIncomplete as exc:
            # every file left out is named: on stdout (or in the JSON), the sentence goes to stderr
            if json_out:
                emit_json(exc.details)
            else:
                for path, why in exc.details.get("not_restored", {}).items():
                    typer.echo(f"not restored: {path}: {why}")
            raise
        if json_out:
            emit_json(result)
            return
        if "archive" in result:
            typer.echo(f"restored {result['files']} files ({human_bytes(result['bytes'])}) of archive "
                       f"{result['archive'][:8]} into {result['target']}")
            return
        typer.echo(f"restored {result['files']} files ({human_bytes(result['bytes'])}) of snapshot "
                   f"{result['snapshot_id'][:8]} into {result['target']} in {result['seconds']} s")
        if result.get("hardlinks_copied"):
            typer.echo(f"{result['hardlinks_copied']} hard link(s) restored as copies: the target's file system "
                       "cannot hold hard links")
        skipped = result.get("symlinks_skipped") or []
        if skipped:
            shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            typer.echo(f"warning: {len(skipped)} symlink(s) not restored ({shown}): the target's file system "
                       "cannot hold symlinks; restore into another file system to get them", err=True)
        for warning in result.get("warnings") or []:
            typer.echo(f"warning: {warning}", err=True)
    run_guarded(go)


@app.command()
def verify(read_data: bool = typer.Option(False, "--read-data",
                                          help="Read back every pack and check every chunk hash."),
           archives: bool = typer.Option(False, "--archives",
                                         help="Check every archive at the archive destination against its hash."),
           frm: Optional[str] = FROM_OPTION, from_option: Optional[List[str]] = FROM_OPTION_OPTION,
           repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
           json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Check the repository (or, with --archives, the archives) as a Prefect flow run; names damage."""
    def go():
        try:
            if archives:
                report = verify_archives(frm, from_option, config, json_out)
            else:
                url, opts, _ = repo_context(repo, option, config)
                runner, flows = load_flows()
                report = runner.run_flow(flows.verify_flow, url, opts, not json_out, read_data=read_data)
        except Exception as exc:
            report = getattr(exc, "details", None)
            if not report:
                raise
            if json_out:
                emit_json(report)
            else:
                problems = report["problems"]
                for p in problems.items() if isinstance(problems, dict) else problems:
                    typer.echo(f"problem: {'archive ' + p[0][:8] + ': ' + p[1] if isinstance(p, tuple) else p}",
                               err=True)
            raise
        if json_out:
            emit_json(report)
            return
        if archives:
            typer.echo(f"no problems found: {report['archives']} archive(s) at {report['destination']}")
            return
        typer.echo(f"no problems found: {report['snapshots']} snapshots, {report['packs']} packs, "
                   f"{report['chunks']} chunks" + (f", {human_bytes(report['bytes_read'])} read" if read_data else ""))
    run_guarded(go)


@app.command()
def export(snapshot: str = typer.Argument(..., help="Snapshot id, unique prefix, or 'latest'."),
           file: str = typer.Argument(..., help="Output .tar.gz file."),
           include: Optional[List[str]] = typer.Option(None, "--include", "-i"),
           repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
           json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Write a snapshot as a standard .tar.gz (restore it with plain `tar -xzf`)."""
    def go():
        out = open_repository(repo, option, config).export_tar(snapshot, file, list(include or []) or None).to_dict()
        if json_out:
            emit_json(out)
        else:
            typer.echo(f"wrote {out['files']} files of {out['snapshot_id'][:8]} to {out['file']}")
    run_guarded(go)


@app.command()
def stats(repo: Optional[str] = REPO_OPTION, option: Optional[List[str]] = OPTION_OPTION,
          json_out: bool = JSON_OPTION, config: Optional[str] = CONFIG_OPTION):
    """Repository size, deduplication and compression."""
    def go():
        r = open_repository(repo, option, config)
        s = {**r.stats().to_dict(), "encryption": r.config.encryption["scheme"] if r.encrypted else "none"}
        warn_damaged(s.get("damaged_snapshots") or {})
        if json_out:
            emit_json(s)
            return
        s.pop("damaged_snapshots", None)
        for k, v in s.items():
            typer.echo(f"{k:18} {human_bytes(v) if k.startswith('bytes') else v}")
    run_guarded(go)
