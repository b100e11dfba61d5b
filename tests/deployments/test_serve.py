"""The schedules a user deploys: serve() and prefect.yaml name real flows with real parameters."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from deployments.serve import build

ROOT = Path(__file__).resolve().parents[2]


def test_serve_builds_the_backup_verify_and_prune_schedules(tmp_path):
    deps = {d.name: d for d in build(str(tmp_path), "/srv/repo", "0 2 * * *", "0 4 * * 0")}
    assert set(deps) == {"scheduled-backup", "weekly-verify", "weekly-prune"}
    assert deps["scheduled-backup"].parameters == {"source": str(tmp_path), "repo": "/srv/repo"}
    assert deps["weekly-verify"].parameters == {"repo": "/srv/repo", "read_data": True}
    crons = {name: d.schedules[0].schedule.cron for name, d in deps.items()}
    # verify and prune never share a minute: a prune would be refused while the verify reads
    assert crons == {"scheduled-backup": "0 2 * * *", "weekly-verify": "0 4 * * 0", "weekly-prune": "0 5 * * 0"}


def test_serve_refuses_a_prune_at_the_same_time_as_the_verify(tmp_path):
    with pytest.raises(ValueError, match="equals the verify schedule"):
        build(str(tmp_path), "/srv/repo", "0 2 * * *", "0 4 * * 0", "0 4 * * 0")


def test_prefect_yaml_entrypoints_are_flows_that_take_their_parameters():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"], "prefect.yaml declares no deployment"
    for dep in spec["deployments"]:
        path, name = dep["entrypoint"].split(":")
        module = importlib.import_module(path[:-3].replace("/", "."))
        flow = getattr(module, name)
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(dep.get("parameters", {})) <= accepted, (dep["name"], accepted)
        assert dep["schedules"][0]["cron"].count(" ") == 4
