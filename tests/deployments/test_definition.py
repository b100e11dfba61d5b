"""One definition of the scheduled deployments (deployments/definition.py): the schedules follow
the config's [backup] keys, no two jobs start in the same minute, and prefect.yaml is exactly
what the definition writes, under names that never replace serve's (issues 14 and 16)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from prefect.utilities.importtools import import_object

from deployments.definition import POOL_SUFFIX, all_jobs, minutes_of_week, scheduled_jobs
from deployments.prefect_yaml import render
from deployments.serve import build
from storage.config import BackupSettings

ROOT = Path(__file__).resolve().parents[2]


def crons(**keys) -> dict[str, str]:
    return {job.name: job.cron for job in scheduled_jobs(BackupSettings(**keys))}


def test_the_seed_defaults_back_up_daily_at_two_and_the_rest_follows_at_their_own_minutes():
    assert crons() == {"scheduled-backup": "0 2 * * 1-6", "weekly-full-backup": "0 2 * * 0",
                       "daily-archive": "20 3 * * *", "daily-cleanup": "40 4 * * *", "weekly-verify": "30 5 * * 0",
                       "weekly-prune": "50 6 * * 0"}


def test_hourly_runs_at_the_minute_of_backup_time_and_weekly_on_sunday():
    hourly = crons(backup_frequency="hourly", backup_time="23:55")
    assert hourly["scheduled-backup"] == "55 * * * *"
    assert hourly["weekly-full-backup"] == "5 0 * * 0"  # 10 minutes later, past midnight
    weekly = crons(backup_frequency="weekly", backup_time="07:30")
    assert weekly["scheduled-backup"] == "30 7 * * 0" and "weekly-full-backup" not in weekly
    assert [j.parameters for j in scheduled_jobs(BackupSettings(backup_frequency="weekly"))][0] == {"type": "full"}


def test_the_configs_excludes_go_with_every_backup_deployment():
    jobs = all_jobs(BackupSettings(exclude=["*.log", "node_modules"]))
    backups = [j for j in jobs if j.entrypoint in ("flows.backup:backup_flow", "flows.panel:create_backup_flow")]
    assert len(backups) == 3 and all(j.parameters["excludes"] == ["*.log", "node_modules"] for j in backups)
    assert all("excludes" not in j.parameters for j in jobs if j not in backups)


def test_the_archive_form_starts_from_the_configs_archive_keys():
    jobs = all_jobs(BackupSettings(archive_threshold_days=45, keep_minimum_count=3))
    archive = [j for j in jobs if j.entrypoint == "flows.panel:archive_old_backups_flow"]
    assert [j.parameters for j in archive] == [{"older_than_days": 45, "keep": 3}]


def test_auto_backup_enabled_false_serves_no_backup():
    assert set(crons(auto_backup_enabled=False)) == {"daily-archive", "daily-cleanup", "weekly-verify", "weekly-prune"}


@pytest.mark.parametrize("frequency, at", list(itertools.product(["hourly", "daily", "weekly"],
                                                            ["00:00", "02:00", "12:37", "23:59", "21:10"])))
def test_no_two_jobs_ever_start_in_the_same_minute(frequency, at):
    jobs = scheduled_jobs(BackupSettings(backup_frequency=frequency, backup_time=at))
    for a, b in itertools.combinations(jobs, 2):
        assert not minutes_of_week(a.cron) & minutes_of_week(b.cron), (a, b)


def test_prefect_yaml_is_what_the_definition_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the defaults, not a config of the checkout
    monkeypatch.delenv("BACKUPFLOW_CONFIG", raising=False)
    assert (ROOT / "prefect.yaml").read_text() == render(), \
        "prefect.yaml differs from the definition: run `python -m deployments.prefect_yaml`"


def test_serve_and_prefect_yaml_make_the_same_jobs_under_names_that_do_not_clash(tmp_path):
    served = {(d.flow_name, d.name): d for d in build(all_jobs(BackupSettings()), str(tmp_path), "/srv/repo")}
    pooled = {(import_object(d["entrypoint"]).name, d["name"]): d
              for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert len(served) == len(all_jobs(BackupSettings())), "two served deployments share a name"
    assert not set(served) & set(pooled), "a served deployment and a pool one would replace each other"
    assert {(flow, name + POOL_SUFFIX) for flow, name in served} == set(pooled)
    for (flow, name), dep in served.items():
        pool = pooled[(flow, name + POOL_SUFFIX)]
        assert [s.schedule.cron for s in dep.schedules] == [s["cron"] for s in pool["schedules"]]
        fixed = {k: v for k, v in pool["parameters"].items() if k not in ("source", "repo")}
        assert {k: v for k, v in dep.parameters.items() if k not in ("source", "repo")} == fixed
        assert set(dep.parameters) == set(pool["parameters"])
        assert dep.enforce_parameter_schema and pool["enforce_parameter_schema"]
    assert served[("backup", "scheduled-backup")].parameters == {"source": str(tmp_path), "repo": "/srv/repo"}
    assert served[("create-backup", "panel")].parameters == {"source": str(tmp_path), "repo": "/srv/repo"}
