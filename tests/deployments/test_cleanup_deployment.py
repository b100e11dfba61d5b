"""The daily cleanup as a deployment of prefect.yaml on a work pool: the run a schedule would
start waits for approval in the UI (Paused), `backupflow approve` lets it go on, and it removes
what the configured policy (retention_days, keep_minimum_count) no longer keeps."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from tests.flows.cli_process import run
from tests.flows.test_cleanup_flow import calendar  # noqa: F401  (the fixture: a repository with a past)
from tests.suite_password import open_repository

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = pytest.mark.prefect


def _wait(client, run_id, done, what: str, worker: subprocess.Popen, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while not done(state := client.read_flow_run(run_id).state):
        if time.monotonic() > deadline or (worker.poll() is not None and not state.is_paused()):
            worker.kill()
            raise AssertionError(f"the run is {state.type} {state.message}, not {what}:\n{worker.communicate()}")
        time.sleep(1)
    return state


def test_the_daily_cleanup_deployment_waits_for_approval_then_applies_the_configured_policy(calendar, tmp_path):  # noqa: F811
    env, work, repo_dir, ids, _, audit = calendar  # config: retention_days 60, keep_minimum_count 1
    pool = f"bf-cleanup-{uuid.uuid4().hex[:8]}"
    deploy_dir, worker_dir = tmp_path / "deploy-machine", tmp_path / "worker-machine"
    deploy_dir.mkdir()
    worker_dir.mkdir()
    shutil.copy(ROOT / "prefect.yaml", deploy_dir / "prefect.yaml")
    env = {**env, "PYTHONPATH": ""}
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployed = subprocess.run([PREFECT, "--no-prompt", "deploy", "--name", "cleanup-flow/daily-cleanup-pool",
                               "--pool", pool], cwd=deploy_dir, env=env, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("cleanup/daily-cleanup-pool")
        assert dep.parameters == {"repo": str(repo_dir)}
        flow_run = client.create_flow_run_from_deployment(dep.id)  # what the 04:40 schedule does
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", pool, "--run-once"], cwd=worker_dir,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait(client, flow_run.id, lambda s: s.is_paused(), "waiting for approval", worker)
            assert {p.name for p in (repo_dir / "snapshots").iterdir()} == set(ids.values())  # nothing went yet
            run(["approve", str(flow_run.id), "--as", "bob", "--reason", "daily retention"], env, work).ok()
            state = _wait(client, flow_run.id, lambda s: s.is_final(), "finished", worker)
            worker.communicate(timeout=120)
        finally:
            if worker.poll() is None:
                worker.kill()
            client.delete_deployment(dep.id)
    assert state.is_completed(), f"{state.type} {state.message}"
    left = {s.id for s in open_repository(str(repo_dir)).snapshots.all()}
    assert left == {ids[n] for n in ("full", "diff-50", "diff-0", "two")}
    types = [e["type"] for e in audit.get_events(flow_run_id=str(flow_run.id))]
    assert types[0] == "cleanup.requested" and types[-1] == "cleanup.completed"
