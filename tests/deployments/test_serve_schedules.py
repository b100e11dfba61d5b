"""Changing the configuration and restarting `python -m deployments.serve` changes the served
deployments' schedules on the Prefect server (what the UI's Deployments page shows); a run
whose repository parameter is empty refuses at once in one sentence (issues 14 and 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect import get_client

from storage.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]


def _served_crons(repo: str) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        found = client.read_deployments()
    return {d.name: d.schedules[0].schedule.cron for d in found
            if d.parameters.get("repo") == repo and d.schedules
            and d.name in ("scheduled-backup", "weekly-full-backup")}


def _serve_until(prefect_server, tmp_path, config: str, want: dict[str, str]) -> None:
    env = {**os.environ, **prefect_server.env(), "BACKUPFLOW_AUDIT_PATH": str(tmp_path / "audit")}
    proc = subprocess.Popen([sys.executable, "-m", "deployments.serve", "--config", config],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while (seen := _served_crons(str(tmp_path / "repo"))) != want:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, f"the server shows {seen}, not {want}"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)


def test_restarting_serve_after_a_config_change_updates_the_schedules(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    config = tmp_path / "backupflow.toml"
    config.write_text('[backup]\nbackup_path = "repo"\nsource = "src"\nbackup_time = "02:00"\n')
    _serve_until(prefect_server, tmp_path, str(config),
                 {"scheduled-backup": "0 2 * * 1-6", "weekly-full-backup": "0 2 * * 0"})
    config.write_text('[backup]\nbackup_path = "repo"\nsource = "src"\nbackup_frequency = "hourly"\n'
                      'backup_time = "03:15"\n')
    _serve_until(prefect_server, tmp_path, str(config),
                 {"scheduled-backup": "15 * * * *", "weekly-full-backup": "25 3 * * 0"})
    # weekly backups are fulls themselves: the separate weekly full leaves the UI
    config.write_text('[backup]\nbackup_path = "repo"\nsource = "src"\nbackup_frequency = "weekly"\n'
                      'backup_time = "03:15"\n')
    _serve_until(prefect_server, tmp_path, str(config), {"scheduled-backup": "15 3 * * 0"})


@pytest.mark.parametrize("flow_name, params, empty", [
    ("backup_flow", {"source": "", "repo": "/srv/r"}, "source"),
    ("backup_flow", {"source": "/srv/src", "repo": " "}, "repo"),
    ("verify_flow", {"repo": ""}, "repo"),
    ("prune_flow", {"repo": ""}, "repo"),
    ("verify_flow", {"repo": "{{ $BACKUPFLOW_REPO }}"}, "repo"),
])
def test_a_run_with_an_empty_source_or_repository_refuses_at_once(prefect_server, tmp_path, monkeypatch,
                                                                    flow_name, params, empty):
    import flows

    monkeypatch.chdir(tmp_path)  # what an empty path would have meant
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    with pytest.raises(InvalidInput) as err:
        getattr(flows, flow_name)(**params)
    assert str(err.value).startswith(f"The parameter '{empty}' is ")
    assert "; give the run or its deployment a" in str(err.value)
    assert list(tmp_path.iterdir()) == [], "nothing may be written where an empty path points"
