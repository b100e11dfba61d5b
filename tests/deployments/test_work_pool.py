"""prefect.yaml on a work pool as issue 16 asks: `prefect deploy` from any folder, a worker in
another folder with no checkout (backupflow installed, no pull step), and the run completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from storage import Repository
from tests.suite_password import SUITE_ENV

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_a_worker_without_a_checkout_runs_a_deployment_of_prefect_yaml(prefect_server, tmp_path):
    pool = f"bf-test-{uuid.uuid4().hex[:8]}"
    repo = tmp_path / "repo"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    Repository.init(str(repo)).backup(str(tmp_path / "src"))
    deploy_dir, worker_dir = tmp_path / "deploy-machine", tmp_path / "worker-machine"
    deploy_dir.mkdir()
    worker_dir.mkdir()
    shutil.copy(ROOT / "prefect.yaml", deploy_dir / "prefect.yaml")  # only the file, none of the code
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPFLOW_") or k in SUITE_ENV}
    env.update(prefect_server.env(), BACKUPFLOW_REPO=str(repo), BACKUPFLOW_SOURCE=str(tmp_path / "src"),
               BACKUPFLOW_AUDIT_PATH=str(tmp_path / "audit"), PYTHONPATH="")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    unset = {k: v for k, v in env.items() if k != "BACKUPFLOW_REPO"}
    refused = subprocess.run([PREFECT, "--no-prompt", "deploy", "--name", "verify-now-flow/panel-pool",
                              "--pool", pool], cwd=deploy_dir, env=unset, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "BACKUPFLOW_REPO is not set" in refused.stdout + refused.stderr
    with get_client(sync_client=True) as client:
        assert not [d for d in client.read_deployments() if d.work_pool_name == pool], "a half-configured deployment"
    # `prefect deploy --name FLOW/NAME` spells FLOW from the entrypoint's function name
    deployed = subprocess.run([PREFECT, "--no-prompt", "deploy", "--name", "verify-now-flow/panel-pool",
                               "--pool", pool], cwd=deploy_dir, env=env, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("verify-now/panel-pool")
        assert dep.parameters == {"repo": str(repo)} and not dep.pull_steps
        run = client.create_flow_run_from_deployment(dep.id, parameters={"read_data": True})
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", pool, "--run-once"], cwd=worker_dir, env=env,
                            capture_output=True, text=True, timeout=300)
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while not (state := client.read_flow_run(run.id).state).is_final():
            assert time.monotonic() < deadline, f"the run stayed {state.type}:\n{worker.stdout}{worker.stderr}"
            time.sleep(1)
        client.delete_deployment(dep.id)
    assert state.is_completed(), f"{state.type} {state.message}:\n{worker.stdout}{worker.stderr}"
    assert list(worker_dir.iterdir()) == [], "the worker wrote into its working folder"
