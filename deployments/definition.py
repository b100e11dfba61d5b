"""The one definition of backupflow's scheduled deployments, made from the configuration.

`python -m deployments.serve`, `backupflow serve` (deployments.runner_child) and prefect.yaml
(written by `python -m deployments.prefect_yaml`, checked by tests/deployments/test_definition.py)
all take their deployments from :func:`scheduled_jobs`; none of this module imports Prefect.

When each job runs, from ``[backup] backup_frequency`` and ``backup_time`` (T, UTC):

    backup        daily: T Monday-Saturday; weekly: T on Sunday (a full); hourly: minute of T, every hour
    full-backup   Sunday at T, a full that starts a new chain (daily); hourly: Sunday at T + 10 min
    archive       daily, T + 1 h 20 min
    cleanup       daily, T + 2 h 40 min
    verify        Sunday, T + 3 h 30 min, --read-data
    prune         Sunday, T + 4 h 50 min

Each job has its own minute of the hour (T's minute + 0, 10, 20, 30, 40, 50), so no two ever
start in the same minute, not even beside an hourly backup; prune never meets the verify (a
prune is refused while a verify reads). A weekly full keeps chains a week long, so that
archive and cleanup, which move or delete whole chains, have old chains to work on.
``auto_backup_enabled = false`` leaves out both backup jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from storage.config import BackupSettings

SUNDAY = 0
DAILY_BACKUP_DAYS = "1-6"


@dataclass(frozen=True)
class Job:
    """One scheduled deployment: which flow, when, with which fixed parameters."""

    name: str          # deployment name under `serve`; prefect.yaml adds POOL_SUFFIX
    entrypoint: str    # module path, importable wherever backupflow is installed
    cron: str | None   # UTC; None: started by hand (a panel action)
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)  # besides source and repo
    needs_source: bool = False  # a scheduled backup: no source, no schedule
    takes_source: bool = False  # the source is the default of its form when there is one

    @property
    def flow_module(self) -> str:
        return self.entrypoint.split(":")[0]

    @property
    def flow_name(self) -> str:
        return self.entrypoint.split(":")[1]


# serve and prefect.yaml make deployments of the same flows: distinct names, so that one never
# overwrites the other's (a served deployment replaced by a work-pool one stops being served).
POOL_SUFFIX = "-pool"


def _at(minutes_of_day: int) -> tuple[int, int]:
    minutes_of_day %= 24 * 60
    return minutes_of_day // 60, minutes_of_day % 60


def _backup_jobs(b: BackupSettings, t: int) -> list[Job]:
    hour, minute = _at(t)
    backup = "flows.backup:backup_flow"
    if b.backup_frequency == "weekly":
        return [Job("scheduled-backup", backup, f"{minute} {hour} * * {SUNDAY}",
                    "Weekly full backup of the workspace (each one starts a new chain).", {"type": "full"}, True)]
    if b.backup_frequency == "hourly":
        every = Job("scheduled-backup", backup, f"{minute} * * * *",
                    "Hourly incremental backup of the workspace.", {}, True)
        full_hour, full_minute = _at(t + 10)
    else:
        every = Job("scheduled-backup", backup, f"{minute} {hour} * * {DAILY_BACKUP_DAYS}",
                    "Daily incremental backup of the workspace (Sunday's is the full one).", {}, True)
        full_hour, full_minute = hour, minute
    full = Job("weekly-full-backup", backup, f"{full_minute} {full_hour} * * {SUNDAY}",
               "Weekly full backup: starts a new, self-contained chain.", {"type": "full"}, True)
    return [every, full]


# Jobs that are not backups: (name, entrypoint, minutes after T, weekly?, description, parameters).
OTHER_JOBS: list[tuple[str, str, int, bool, str, dict[str, Any]]] = [
    ("daily-archive", "flows.archive:archive_flow", 60 + 20, False,
     "Move snapshots older than archive_threshold_days (the newest keep_minimum_count stay) to archive_path "
     "as .tar.gz, then drop them from the repository.", {}),
    ("daily-cleanup", "flows.cleanup:cleanup_flow", 2 * 60 + 40, False,
     "Apply retention_days (the newest keep_minimum_count always stay) to snapshots, after Guardian "
     "approval, then prune.", {}),
    ("weekly-verify", "flows.verify:verify_flow", 3 * 60 + 30, True,
     "Read back every pack and check every chunk hash (verify --read-data).", {"read_data": True}),
    # On a fleet other hosts' backups may be running at prune time: wait for them, not refuse.
    ("weekly-prune", "flows.forget:prune_flow", 4 * 60 + 50, True,
     "Delete data no snapshot needs any more (waits up to an hour for running backups and verifies, then "
     "refuses, changing nothing).", {"wait_minutes": 60}),
]


# The panel: every action as a deployment with a typed form (flows/panel.py), started from the
# UI's Run button; archive and cleanup are typed flows of their own.
PANEL = "panel"
PANEL_JOBS = [
    Job(PANEL, "flows.panel:create_backup_flow", None, "Create Backup: back up a folder now.", takes_source=True),
    Job(PANEL, "flows.panel:restore_snapshot_flow", None, "Restore Selected: restore a chosen snapshot."),
    Job(PANEL, "flows.panel:preview_diff_flow", None,
        "Preview Diff: the files added, removed and changed since a snapshot, as a markdown artifact."),
    Job(PANEL, "flows.panel:verify_now_flow", None, "Verify: check the repository now."),
    Job(PANEL, "flows.panel:archive_old_backups_flow", None,
        "Archive Old Backups: move old snapshots to the archive tier as .tar.gz."),
    Job(PANEL, "flows.cleanup:cleanup_flow", None, "Clean Up: apply the retention policy (after approval)."),
]


def all_jobs(b: BackupSettings) -> list[Job]:
    """What `serve` and prefect.yaml deploy: the scheduled jobs and the panel's actions."""
    return scheduled_jobs(b) + [with_config_defaults(job, b) for job in PANEL_JOBS]


def with_config_defaults(job: Job, b: BackupSettings) -> Job:
    """A panel action whose form starts from the configuration's values."""
    if job.entrypoint == "flows.panel:archive_old_backups_flow":
        return replace(job, parameters={"older_than_days": b.archive_threshold_days, "keep": b.keep_minimum_count})
    return with_excludes(job, b)


def with_excludes(job: Job, b: BackupSettings) -> Job:
    """A backup job with the config's ``exclude`` globs as its parameter (the CLI adds them too)."""
    if not b.exclude or job.entrypoint not in ("flows.backup:backup_flow", "flows.panel:create_backup_flow"):
        return job
    return replace(job, parameters={**job.parameters, "excludes": list(b.exclude)})


def scheduled_jobs(b: BackupSettings) -> list[Job]:
    """The scheduled deployments the configuration asks for, in the order they run."""
    hour, minute = b.backup_hour_minute
    t = hour * 60 + minute
    jobs = [with_excludes(job, b) for job in _backup_jobs(b, t)] if b.auto_backup_enabled else []
    for name, entrypoint, after, weekly, description, parameters in OTHER_JOBS:
        h, m = _at(t + after)
        jobs.append(Job(name, entrypoint, f"{m} {h} * * {SUNDAY if weekly else '*'}", description, parameters))
    check_no_two_in_one_minute(jobs)
    return jobs


def _field(text: str, top: int) -> set[int]:
    if text == "*":
        return set(range(top))
    if "-" in text:
        low, high = text.split("-")
        return set(range(int(low), int(high) + 1))
    return {int(text)}


def minutes_of_week(cron: str) -> set[int]:
    """The minutes of a week (0 = Sunday 00:00) at which a cron of the forms used here fires."""
    minute, hour, dom, month, dow = cron.split()
    assert dom == "*" and month == "*", cron  # this module writes none other
    return {d * 1440 + h * 60 + m for d in _field(dow, 7) for h in _field(hour, 24) for m in _field(minute, 60)}


def check_no_two_in_one_minute(jobs: list[Job]) -> None:
    seen: dict[int, str] = {}
    for job in jobs:
        for at in minutes_of_week(job.cron) if job.cron else ():
            if at in seen:
                raise ValueError(f"{job.name} and {seen[at]} would start in the same minute")
            seen[at] = job.name
