"""The BackupManager of the Python API: backups of the configured source, as Prefect flow runs.

``create_backup`` and ``restore_backup`` run the backup and restore flows in this process (real
flow runs, in the UI and the audit log when a Prefect server is configured); ``schedule_backup``
puts a deployment with a cron or interval schedule on the server; ``get_backup`` and
``get_backup_stats`` read the repository directly, without Prefect.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.states import State

from flows.archive import archive_flow
from flows.backup import backup_flow
from flows.cleanup import cleanup_flow
from flows.configured import Target, configured_target
from flows.restore import restore_flow
from storage.config import zstd_level
from storage.errors import ApprovalRejected, ApprovalTimeout, InvalidInput, NotFound
from storage.repository.workflows import CARRIES_VERSIONS, CARRIES_WORKFLOWS
from storage.snapshots import Snapshot, SnapshotType

SCHEDULE_TAG = "python-api"   # the tag of deployments made by schedule_backup
CRON_KEYS = {"minute", "hour", "day", "month", "day_of_week"}
INTERVAL_KEYS = {"days", "hours", "minutes", "seconds"}


@dataclass
class BackupMetadata:
    backup_id: str
    backup_type: str
    timestamp: datetime
    size: int                 # bytes of the files in the backup
    files: int
    parent: str | None
    tags: list[str]
    description: str
    include_versions: bool
    include_workflows: bool
    source: str = ""
    flow_run_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, snap: Snapshot, flow_run_id: str | None = None) -> "BackupMetadata":
        return cls(snap.id, snap.type, datetime.fromisoformat(snap.time), int(snap.stats.get("bytes_total", 0)),
                   int(snap.stats.get("files", 0)), snap.parent, [t for t in snap.tags if not t.startswith("bf:")],
                   snap.description, CARRIES_VERSIONS in snap.tags, CARRIES_WORKFLOWS in snap.tags, snap.source,
                   flow_run_id, dict(snap.stats))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = self.timestamp.isoformat()
        return out


def _result(value: Any) -> Any:
    """A flow that ends in a named Completed state (an incomplete backup) returns the state."""
    return value.result() if isinstance(value, State) else value


class BackupManager:
    """Backups of the configured source into the configured repository."""

    def __init__(self, target: Target):
        self.target = target

    # --- running flows ---------------------------------------------------------------------
    def create_backup(self, backup_type: SnapshotType = "full", description: str = "", tags: list[str] | None = None,
                      include_versions: bool | None = None, include_workflows: bool | None = None) -> BackupMetadata:
        """Run the backup flow once; the new snapshot's metadata."""
        b = self.target.settings.backup
        summary = _result(backup_flow(source=self.target.source(), repo=self.target.url, type=backup_type,
                                      excludes=list(b.exclude), tags=list(tags or []), description=description,
                                      options=self.target.options, compression_level=zstd_level(b.compression_level),
                                      connections=b.connections, pack_size_mib=b.pack_size_mib,
                                      include_versions=include_versions, include_workflows=include_workflows))
        with self.target.open() as repo:
            return BackupMetadata.of(repo.snapshots.header(summary["snapshot_id"]), summary.get("flow_run_id"))

    def restore_backup(self, backup_id: str, target_path: str | None = None, require_approval: bool = True,
                       include: list[str] | None = None) -> bool:
        """Run the restore flow into ``target_path`` (default: the configured source). Guardian
        decides first: the approval callback or auto-approval set on ``get_guardian()``, else the
        paused flow run. True when restored, False when the request was rejected or timed out."""
        target = os.path.abspath(target_path or self.target.source())
        try:
            _result(restore_flow(snapshot=backup_id, target=target, repo=self.target.url,
                                 include=include, options=self.target.options, require_approval=require_approval))
        except (ApprovalRejected, ApprovalTimeout):
            return False
        self._carry_history(backup_id, target, include)
        return True

    def _carry_history(self, backup_id: str, target: str, include: list[str] | None) -> int:
        """A snapshot that carries versions, restored somewhere else: the restored files get the
        history their originals had at the snapshot's time (VersionStore.copy_history)."""
        with self.target.open() as repo:
            snap = repo.snapshots.load(repo.snapshots.resolve_id(backup_id))
            if CARRIES_VERSIONS not in snap.tags or target == snap.source:
                return 0
            wanted = [p.strip("/") for p in include or []]
            pairs = [(posixpath.join(snap.source, e["path"]), os.path.join(target, e["path"])) for e in snap.entries
                     if e["type"] == "file" and (not wanted or any(e["path"] == w or e["path"].startswith(w + "/")
                                                                   for w in wanted))]
            return repo.versions().copy_history(pairs, until=datetime.fromisoformat(snap.time))

    def archive_old_backups(self, days_threshold: int = 30, keep_count: int = 10) -> int:
        """Run the archive flow: snapshots older than ``days_threshold`` days, beyond the
        ``keep_count`` newest of each source, go to the archive tier (``[backup] archive_path``)
        as .tar.gz and leave the repository; the number of snapshots moved."""
        result = _result(archive_flow(repo=self.target.url, older_than=f"{days_threshold}d", keep=keep_count,
                                      options=self.target.options))
        return len(result["forgotten"])

    def cleanup_old_backups(self, retention_days: int = 90, keep_minimum_count: int | None = None) -> int:
        """Run the cleanup flow with ``retention_days`` (Guardian approves the deletion; whole
        chains only, never the newest ``keep_minimum_count``, default the config's); the number
        of snapshots deleted."""
        result = _result(cleanup_flow(repo=self.target.url, retention_days=retention_days,
                                      keep_minimum_count=keep_minimum_count, options=self.target.options))
        return len(result["forgotten"])

    # --- schedules -------------------------------------------------------------------------
    def schedule_backup(self, schedule_type: Literal["cron", "interval"], schedule_config: dict[str, Any],
                        backup_config: dict[str, Any] | None = None, name: str | None = None,
                        work_pool: str | None = None) -> str:
        """Create or update a deployment of the backup flow with this schedule on the Prefect
        server; its name. ``name`` defaults to ``python-<backup_type>`` (one per type)."""
        backup_config = dict(backup_config or {})
        backup_type = backup_config.pop("backup_type", "incremental")
        versions = backup_config.pop("include_versions", None)
        workflows = backup_config.pop("include_workflows", None)
        tags = list(backup_config.pop("tags", []))
        description = backup_config.pop("description", "")
        if backup_config:
            raise InvalidInput(f"backup_config has unknown keys {sorted(backup_config)}; use backup_type, "
                               "include_versions, include_workflows, tags or description.")
        name = name or f"python-{backup_type}"
        deployment = backup_flow.to_deployment(
            name=name, tags=["backupflow", SCHEDULE_TAG], **_schedule(schedule_type, schedule_config),
            parameters={"source": self.target.source(), "repo": self.target.url, "type": backup_type, "tags": tags,
                        "description": description, "options": self.target.options,
                        "include_versions": versions, "include_workflows": workflows},
            description=f"{backup_type} backup of {self.target.source()} into {self.target.where}, "
                        "scheduled from Python (BackupManager.schedule_backup).")
        deployment.apply(work_pool_name=work_pool)
        return name

    def list_schedules(self) -> list[dict[str, Any]]:
        """The deployments schedule_backup made: name, id, schedules, parameters."""
        with get_client(sync_client=True) as client:
            found = client.read_deployments(deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[SCHEDULE_TAG])))
        return [{"name": d.name, "id": str(d.id), "parameters": d.parameters,
                 "schedules": [_describe(s.schedule) for s in d.schedules]} for d in found]

    def remove_schedule(self, name: str) -> None:
        """Delete a deployment schedule_backup made (NotFound when there is none by that name)."""
        for item in self.list_schedules():
            if item["name"] == name:
                with get_client(sync_client=True) as client:
                    client.delete_deployment(item["id"])
                return
        raise NotFound(f"There is no backup schedule named {name!r}; list_schedules() shows them.")

    # --- reading the repository ------------------------------------------------------------
    def get_backup(self, backup_id: str) -> BackupMetadata | None:
        """A snapshot's metadata by id, unique prefix or 'latest'; None when there is none."""
        with self.target.open() as repo:
            try:
                return BackupMetadata.of(repo.snapshot(backup_id))
            except (NotFound, InvalidInput):
                return None

    def list_backups(self) -> list[BackupMetadata]:
        with self.target.open() as repo:
            return sorted((BackupMetadata.of(s) for s in repo.snapshots.all()), key=lambda m: m.timestamp)

    def get_backup_stats(self) -> dict[str, Any]:
        with self.target.open() as repo:
            snaps = repo.snapshots.all()
            stats = repo.stats()
        by_type = {t: sum(1 for s in snaps if s.type == t) for t in ("full", "incremental", "differential")}
        times = sorted(s.time for s in snaps)
        return {"total_backups": len(snaps), "total_size_bytes": stats.bytes_stored, "by_type": by_type,
                "logical_bytes": stats.bytes_logical, "chains": stats.chains, "dedup_ratio": stats.dedup_ratio,
                "oldest": times[0] if times else None, "newest": times[-1] if times else None,
                "repository": self.target.where}


def _schedule(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``cron=`` or ``interval=`` for ``to_deployment`` from the in-house schedule forms."""
    if kind == "cron":
        unknown = set(config) - CRON_KEYS
        if unknown or not config:
            raise InvalidInput(f"A cron schedule takes {sorted(CRON_KEYS)}, such as {{'hour': 2, 'minute': 0}}; "
                               f"got {sorted(config)}.")
        fields = [config.get(k, "*") for k in ("minute", "hour", "day", "month", "day_of_week")]
        return {"cron": " ".join(str(f) for f in fields)}
    if kind == "interval":
        if len(config) != 1 or set(config) - INTERVAL_KEYS or not isinstance(next(iter(config.values())), int) \
                or next(iter(config.values())) <= 0:
            raise InvalidInput("An interval schedule takes one of hours, minutes, days or seconds with a whole "
                               f"number above 0, such as {{'hours': 6}}; got {config}.")
        return {"interval": timedelta(**config)}
    raise InvalidInput(f"schedule_type must be 'cron' or 'interval', not {kind!r}.")


def _describe(schedule: Any) -> dict[str, Any]:
    if getattr(schedule, "cron", None):
        return {"cron": schedule.cron, "timezone": getattr(schedule, "timezone", None)}
    if getattr(schedule, "interval", None):
        return {"interval_seconds": schedule.interval.total_seconds()}
    return {"schedule": str(schedule)}


def get_backup_manager(config: str | None = None, repository: str | None = None) -> BackupManager:
    """The BackupManager of the configured source and repository (``[backup]``)."""
    return BackupManager(configured_target(config, repository))
