"""The panel's actions as flows with typed, documented parameters: the Run form of each
deployment (deployments/definition.py, PANEL_JOBS) shows dropdowns, lists and the help text of
each docstring's Args, and the server refuses a value the types do not allow before any run
starts (the deployments enforce their parameter schema).

Each calls the body of the flow the CLI runs (backup, restore, verify), so a panel run does
the same work, in one flow run. An engine error that names a command-line flag is reworded
to name the parameter (the form has no flags).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import Field

from flows.archive import archive_flow
from flows.backup import backup_flow
from flows.restore import restore_flow
from flows.verify import verify_flow
from storage.errors import BackupError
from tasks.panel import preview_diff

Text = Annotated[str, Field(min_length=1)]
PARAMETER_OF_FLAG = {"exclude": "excludes", "tag": "tags"}


def _flag(match: re.Match) -> str:
    return "the parameter " + PARAMETER_OF_FLAG.get(match.group(1), match.group(1)).replace("-", "_")


def in_parameters(fn):
    """Re-raise an engine error whose sentence names a CLI flag (``--type``) with the parameter."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackupError as exc:
            if "--" not in exc.message:
                raise
            raise type(exc)(re.sub(r"--([a-z][a-z-]*)", _flag, exc.message), details=exc.details) from exc
    return wrapper


@flow(name="create-backup", flow_run_name="create backup of {source}", validate_parameters=True)
@in_parameters
def create_backup_flow(source: Text, repo: Text,
                       type: Literal["auto", "full", "incremental", "differential"] = "auto",
                       tags: list[str] = [], excludes: list[str] = [],  # noqa: B006 - Prefect copies parameters
                       description: str = "") -> dict[str, Any]:
    """Create Backup: back up a folder now.

    Args:
        source: The folder to back up, on the machine that runs the deployment.
        repo: The repository: a local path on that machine, or s3://, az:// or gs://.
        type: full stores everything again and starts a new chain; incremental only what changed
            since the chain's last backup; differential what changed since the last full; auto is
            incremental when a full exists, else full.
        tags: Tags for the snapshot, one per item.
        excludes: Globs to leave out, one per item (e.g. *.log).
        description: A note stored with the snapshot.
    """
    return backup_flow.fn(source=source, repo=repo, type=None if type == "auto" else type, excludes=list(excludes),
                          tags=list(tags), description=description)


@flow(name="restore-snapshot", flow_run_name="restore {snapshot} -> {target}", validate_parameters=True)
@in_parameters
def restore_snapshot_flow(target: Text, repo: Text, snapshot: Text = "latest",
                          include: list[str] = []) -> dict[str, Any]:  # noqa: B006 - Prefect copies parameters
    """Restore Selected: restore a chosen snapshot (after approval when the policy asks for one).

    Args:
        target: The folder to restore into (created if missing); files there are overwritten
            only after approval.
        repo: The repository: a local path on the machine that runs the deployment, or s3://,
            az:// or gs://.
        snapshot: A snapshot id, a unique id prefix, or latest.
        include: Only these paths of the snapshot, one per item; empty restores everything.
    """
    return restore_flow.fn(snapshot=snapshot, target=target, repo=repo, include=list(include) or None)


@flow(name="preview-diff", flow_run_name="preview diff of {snapshot}", validate_parameters=True)
@in_parameters
def preview_diff_flow(repo: Text, snapshot: Text = "latest", compare_with: str = "") -> dict[str, Any]:
    """Preview Diff: publish a markdown artifact of the files added, removed and changed, with sizes.

    Args:
        repo: The repository: a local path on the machine that runs the deployment, or s3://,
            az:// or gs://.
        snapshot: The snapshot to start from: an id, a unique id prefix, or latest.
        compare_with: Another snapshot (id, prefix or latest) to compare with; empty compares
            with the live folder the snapshot was taken of.
    """
    return preview_diff(repo, {}, snapshot, compare_with or None)


@flow(name="verify-now", flow_run_name="verify {repo}", validate_parameters=True)
@in_parameters
def verify_now_flow(repo: Text, read_data: bool = True) -> dict[str, Any]:
    """Verify: check the repository and publish the verify report.

    Args:
        repo: The repository: a local path on the machine that runs the deployment, or s3://,
            az:// or gs://.
        read_data: Also read back every pack and check every chunk's hash (slower; proves that
            every snapshot restores).
    """
    return verify_flow.fn(repo=repo, read_data=read_data)


@flow(name="archive-old-backups", flow_run_name="archive snapshots older than {older_than_days} days",
      validate_parameters=True)
@in_parameters
def archive_old_backups_flow(repo: Text, older_than_days: Annotated[int, Field(ge=1)] = 30,
                             keep: Annotated[int, Field(ge=0)] = 10, to: str = "",
                             dry_run: bool = False) -> dict[str, Any]:
    """Archive Old Backups: each snapshot older than older_than_days becomes a .tar.gz in the
    archive tier, then leaves the repository (after approval).

    Args:
        repo: The repository: a local path on the machine that runs the deployment, or s3://,
            az:// or gs://.
        older_than_days: Archive snapshots older than this many days (the config's
            archive_threshold_days fills it in).
        keep: The newest this many snapshots of each source always stay (the config's
            keep_minimum_count fills it in).
        to: Where the archives go (any fsspec URL); empty: the config's archive_path.
        dry_run: Only list what would be archived; change nothing.
    """
    return archive_flow.fn(repo=repo, to=to or None, older_than=f"{older_than_days}d", keep=keep, dry_run=dry_run)
