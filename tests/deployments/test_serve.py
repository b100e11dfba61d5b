"""The schedules a user deploys: serve() and prefect.yaml name real flows with real parameters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from prefect.utilities.importtools import import_object

from deployments.definition import scheduled_jobs
from deployments.serve import build, plan
from storage.config import BackupSettings
from storage.errors import BackupsDisabled, InvalidConfig

ROOT = Path(__file__).resolve().parents[2]


def test_serve_builds_the_backup_verify_and_prune_schedules(tmp_path):
    deps = {d.name: d for d in build(scheduled_jobs(BackupSettings()), str(tmp_path), "/srv/repo")}
    assert set(deps) == {"scheduled-backup", "weekly-full-backup", "daily-archive", "daily-cleanup", "weekly-verify",
                         "weekly-prune"}
    assert deps["daily-archive"].parameters == {"repo": "/srv/repo"}  # its defaults: the config's archive keys
    assert deps["scheduled-backup"].parameters == {"source": str(tmp_path), "repo": "/srv/repo"}
    assert deps["weekly-full-backup"].parameters == {"source": str(tmp_path), "repo": "/srv/repo", "type": "full"}
    assert deps["weekly-verify"].parameters == {"repo": "/srv/repo", "read_data": True}


def test_serve_takes_source_and_repository_from_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKUPFLOW_REPO", raising=False)
    config = tmp_path / "c.toml"
    monkeypatch.setenv("BACKUPFLOW_CONFIG", str(config))  # plan() sets it for the served runs: undone after
    config.write_text(f'[backup]\nbackup_path = "{tmp_path}/repo"\nsource = "{tmp_path}"\n')
    jobs, source, repo = plan(None, None, str(config))
    assert (source, repo) == (str(tmp_path), f"{tmp_path}/repo") and jobs
    config.write_text('[backup]\nbackup_path = "r"\n')
    with pytest.raises(InvalidConfig, match="No folder to back up; pass --source DIR"):
        plan(None, None, str(config))
    config.write_text('[backup]\nbackup_path = "r"\nenable_backups = false\n')
    with pytest.raises(BackupsDisabled, match="set enable_backups = true to serve the schedules"):
        plan(str(tmp_path), None, str(config))


def test_prefect_yaml_entrypoints_are_flows_that_take_their_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"], "prefect.yaml declares no deployment"
    assert spec["pull"] == [], "a worker must not need a checkout at the deploy machine's path"
    for dep in spec["deployments"]:
        flow = import_object(dep["entrypoint"])
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(dep.get("parameters", {})) <= accepted, (dep["name"], accepted)
        assert all(s["cron"].count(" ") == 4 for s in dep["schedules"])
