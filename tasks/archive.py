"""Archive tasks: select, export (streamed to the destination), verify (read back), publish;
then the flow forgets and prunes with the forget tasks (tasks/forget.py).

Each task is idempotent, so the retry policy (tasks/retry.py) and a rerun after a kill are
safe: an export writes the same bytes under the same name (never a second archive), a
verify only reads, and publishing writes the metadata that says the archive exists.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage.archive import (
    Written, archives_in, check_archive, plan_restore_archive, publish_archive, published, resolve,
    restore_archive, select, sweep_destination, verify_stored, write_archive,
)
from storage.backend import Backend, open_backend
from storage.errors import PasswordRequired
from storage.sizes import human_bytes
from tasks.prefect_api import publish
from tasks.passwords import find_password
from tasks.repo_access import full_options, open_repo, read_password_block
from tasks.retry import TASK_OPTIONS


def open_destination(dest: str, dest_options: dict[str, Any] | None) -> Backend:
    return open_backend(dest, full_options(dest, dest_options))


def archive_password(encrypted: bool) -> str | None:
    """The password that encrypts (and decrypts) the archives of an encrypted repository: the
    repository's own, from the same sources (tasks/passwords.py), read inside the task so it is
    never a parameter. None for an unencrypted one."""
    if not encrypted:
        return None
    password = find_password(read_password_block)
    if password is None:
        raise PasswordRequired("The repository is encrypted, and so are its archives, with its password; give it "
                               "(--password-file, BACKUPFLOW_PASSWORD, or [backup] password_command).")
    return password


@task(name="select_snapshots", **TASK_OPTIONS)
def select_snapshots(repo: str, options: dict[str, Any], dest: str, dest_options: dict[str, Any],
                     older_than_days: float, keep: int) -> dict[str, Any]:
    snaps = open_repo(repo, options).snapshots.all()
    plan = select(snaps, older_than_days, keep)
    backend = open_destination(dest, dest_options)
    sweep_destination(backend)
    plan.archived = [sid for sid in plan.snapshots if published(backend, sid) is not None]
    return plan.to_dict()


@task(name="export_archive", **TASK_OPTIONS)
def export_archive(repo: str, options: dict[str, Any], dest: str, dest_options: dict[str, Any], snapshot_id: str,
                   level: int, storage_class: str | None) -> dict[str, Any]:
    r = open_repo(repo, options)
    return write_archive(r, r.snapshots.load(snapshot_id), open_destination(dest, dest_options), level,
                         storage_class, archive_password(r.encrypted)).to_dict()


@task(name="verify_archive", **TASK_OPTIONS)
def verify_archive(repo: str, options: dict[str, Any], dest: str, dest_options: dict[str, Any],
                   written: dict[str, Any]) -> None:
    r = open_repo(repo, options)
    check_archive(open_destination(dest, dest_options), Written(**written), r.snapshots.load(written["id"]),
                  archive_password(written["encrypted"]))


@task(name="publish_archive", **TASK_OPTIONS)
def publish_archive_task(repo: str, options: dict[str, Any], dest: str, dest_options: dict[str, Any],
                         written: dict[str, Any], level: int, storage_class: str | None) -> dict[str, Any]:
    r = open_repo(repo, options)
    return publish_archive(r, r.snapshots.load(written["id"]), open_destination(dest, dest_options),
                           Written(**written), level, storage_class).to_dict()


@task(name="verify_archives", **TASK_OPTIONS)
def verify_archives(dest: str, dest_options: dict[str, Any]) -> dict[str, Any]:
    backend = open_destination(dest, dest_options)
    metas, damaged = archives_in(backend)
    problems = {aid: f"its metadata cannot be read: {why}" for aid, why in damaged.items()}
    for meta in metas:
        why = verify_stored(backend, meta)
        if why:
            problems[meta.id] = why
    return {"archives": len(metas), "ok": not problems, "problems": problems}


@task(name="plan_archive_restore", **TASK_OPTIONS)
def plan_archive_restore(dest: str, dest_options: dict[str, Any], archive: str, target: str) -> dict[str, Any]:
    backend = open_destination(dest, dest_options)
    meta = resolve(backend, archive)
    return plan_restore_archive(backend, meta, target, archive_password(meta.encrypted)).to_dict()


@task(name="extract_archive", **TASK_OPTIONS)
def extract_archive(dest: str, dest_options: dict[str, Any], archive: str, target: str) -> dict[str, Any]:
    backend = open_destination(dest, dest_options)
    meta = resolve(backend, archive)
    return restore_archive(backend, meta, target, archive_password(meta.encrypted))


@task(name="publish_archive_report", cache_policy=NO_CACHE)
def publish_archive_report(result: dict[str, Any], dest_display: str) -> None:
    lines = [f"## Archive to {dest_display}", ""]
    for meta in result.get("published") or []:
        lines.append(f"- {meta['id'][:8]} ({meta['type']}, {meta['time'][:19]}): {human_bytes(meta['bytes'])}, "
                     f"sha256 {meta['sha256'][:12]}")
    for sid, why in sorted((result.get("skipped") or {}).items()):
        lines.append(f"- kept {sid[:8]}: {why}")
    publish("archive report", create_markdown_artifact, key="archive-report", markdown="\n".join(lines) + "\n")
