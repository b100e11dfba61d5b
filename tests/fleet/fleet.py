"""A fleet on one machine: a process work pool, deployments of backupflow's flows, workers as
`prefect worker start` processes, and flow runs started from the deployments, as the README's
"Many machines" section sets it up on many hosts.

The deployments name module entrypoints, as prefect.yaml does: the workers import the
installed backupflow (this checkout, installed editable by scripts/setup_venv.sh). Each worker
is a process group of its own; a "host dying" kills the worker and every process under it with
SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType

from storage import Repository

PREFECT = str(Path(sys.executable).with_name("prefect"))
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
FLOWS = {"backup": "flows.backup:backup_flow", "prune": "flows.forget:prune_flow", "verify": "flows.verify:verify_flow"}


def password_of(env: dict[str, str]) -> str | None:
    """The repository password the workers' environment gives (BACKUPFLOW_PASSWORD[_FILE])."""
    if env.get("BACKUPFLOW_PASSWORD_FILE"):
        return Path(env["BACKUPFLOW_PASSWORD_FILE"]).read_text().splitlines()[0]
    return env.get("BACKUPFLOW_PASSWORD")


@dataclass
class Fleet:
    api_url: str
    env: dict[str, str]          # the workers' environment (server, credentials, audit path)
    work: Path
    pool: str = field(default_factory=lambda: f"bf-fleet-{uuid.uuid4().hex[:8]}")
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    deployments: dict[str, UUID] = field(default_factory=dict)

    _client: SyncPrefectClient | None = None

    def open_repo(self, url: str) -> Repository:
        """The repository as the workers open it (with their password, if any)."""
        return Repository.open(url, password=password_of(self.env))

    def client(self) -> SyncPrefectClient:
        """One client for the fleet's life (a new one costs a handshake with the server)."""
        if self._client is None:
            self._client = SyncPrefectClient(self.api_url)
            self._client.__enter__()
        return self._client

    def create(self) -> "Fleet":
        """The process work pool and one deployment per flow, parameters given per run."""
        client = self.client()
        client.create_work_pool(WorkPoolCreate(name=self.pool, type="process"))
        for name, entrypoint in FLOWS.items():
            flow_id = client.create_flow_from_name(name)
            self.deployments[name] = client.create_deployment(
                flow_id, f"{self.pool}-{name}", work_pool_name=self.pool, entrypoint=entrypoint,
                enforce_parameter_schema=False)
        return self

    def start_worker(self, name: str, limit: int | None = None) -> subprocess.Popen:
        home = self.work / f"worker-{name}"
        home.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PREFECT_HOME": str(home),
               # poll often: the test waits for the pool, not for a 10 s query interval
               "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
        argv = [PREFECT, "worker", "start", "--pool", self.pool, "--type", "process", "--name", name]
        if limit:
            argv += ["--limit", str(limit)]
        proc = subprocess.Popen(argv, env=env, cwd=home, stdout=open(home / "worker.log", "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[name] = proc
        return proc

    def submit(self, flow: str, parameters: dict[str, Any], name: str | None = None) -> UUID:
        run = self.client().create_flow_run_from_deployment(self.deployments[flow], parameters=parameters, name=name)
        return run.id

    def submit_many(self, runs: list[tuple[str, dict[str, Any], str]], keep_errors: bool = False) -> list[Any]:
        """(flow, parameters, name) each, created at once: together, as a schedule would. Their
        ids; with ``keep_errors``, the exception in place of a run the server did not create."""
        async def create() -> list[Any]:
            async with PrefectClient(self.api_url) as client:
                return await asyncio.gather(*(client.create_flow_run_from_deployment(
                    self.deployments[flow], parameters=parameters, name=name) for flow, parameters, name in runs),
                    return_exceptions=keep_errors)
        return [r if isinstance(r, BaseException) else r.id for r in asyncio.run(create())]

    def read(self, run_id: UUID) -> FlowRun:
        return self.client().read_flow_run(run_id)

    def read_many(self, run_ids: list[UUID]) -> dict[UUID, FlowRun]:
        runs = self.client().read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                                            limit=len(run_ids))
        return {r.id: r for r in runs}

    def wait(self, run_ids: list[UUID], timeout: float, until: set[StateType] = FINAL) -> dict[UUID, FlowRun]:
        """The runs once each is in one of ``until``; AssertionError naming the others at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.read_many(run_ids)
            waiting = {rid: r for rid, r in runs.items() if r.state_type not in until}
            if not waiting and len(runs) == len(run_ids):
                return runs
            if time.monotonic() > deadline:
                names = ", ".join(f"{r.name}={r.state_name}" for r in waiting.values())
                raise AssertionError(f"{len(waiting)} run(s) not in {sorted(s.value for s in until)} after "
                                     f"{timeout:g} s: {names}\n{self.logs()}")
            time.sleep(1)

    def worker_of(self, run_id: UUID) -> str | None:
        """Which worker's process runs the flow run (its command line names the run id)."""
        for name, proc in self.workers.items():
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for child in children:
                try:
                    if child.environ().get("PREFECT__FLOW_RUN_ID") == str(run_id):
                        return name
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        return None

    def kill_host(self, name: str) -> None:
        """SIGKILL the worker and every process under it, as when its machine dies."""
        proc = self.workers[name]
        try:
            victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            victims = []
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(30)

    def logs(self, tail: int = 3000) -> str:
        out = []
        for name in self.workers:
            log = self.work / f"worker-{name}" / "worker.log"
            if log.exists():
                out.append(f"--- worker {name}:\n" + log.read_text(errors="replace")[-tail:])
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name in list(self.workers):
            proc = self.workers[name]
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_host(name)
        client = self.client()
        for deployment_id in self.deployments.values():
            client.delete_deployment(deployment_id)
        client.delete_work_pool(self.pool)
        client.__exit__(None, None, None)
        self._client = None
