"""Serve backupflow's scheduled deployments from this process (no work pool needed).

    .venv/bin/python -m deployments.serve --source ~/work --repo /backups/repo [--config PATH]

The schedules come from the configuration's ``[backup]`` keys through the one definition in
deployments/definition.py (prefect.yaml is written from it too): the backup at
``backup_frequency``/``backup_time``, a weekly full, archive and cleanup daily, verify
--read-data and prune weekly, no two in the same minute. They appear under Deployments in the
Prefect UI, run on schedule, and can be started by hand from there. Restarting this process
after a change of the configuration updates them there (a deployment is replaced by name; a
served one of the repository that the configuration dropped is deleted).
``--source`` and ``--repo`` default to the config's ``source`` and ``backup_path``.

The first SIGTERM or SIGINT stops the process cleanly (exit 0, one line, no traceback) at any
moment, also while the deployments are still being registered, so systemd's `systemctl stop`
never has to wait for its timeout and SIGKILL. Once serving, Prefect's runner takes SIGTERM
over: it pauses the schedules and cancels runs in flight (a cancelled backup leaves no
snapshot; its packs are reused by the next run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from types import FrameType

from prefect import get_client, serve
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

from deployments.definition import Job, all_jobs
from storage.config import Settings, load_settings, refuse_when_disabled
from storage.errors import BackupError, InvalidConfig


def build(jobs: list[Job], source: str | None, repo: str) -> list:
    """Prefect deployments of ``jobs`` (from deployments.definition) for this source and repository."""
    deployments = []
    for job in jobs:
        flow = getattr(importlib.import_module(job.flow_module), job.flow_name)
        given = job.needs_source or (job.takes_source and source)
        place = {"source": os.path.abspath(source or "")} if given else {}
        deployments.append(flow.to_deployment(
            name=job.name, cron=job.cron, tags=["backupflow"], description=job.description,
            parameters={**place, "repo": repo, **job.parameters}, enforce_parameter_schema=True))
    return deployments


def retire_stale(deployments: list, repo: str) -> list[str]:
    """Delete the served deployments (no work pool) of this repository that the configuration
    no longer asks for (a weekly full after switching to weekly backups), so that the UI shows
    exactly the configured set; the names deleted."""
    wanted = {(d.flow_name, d.name) for d in deployments}
    gone = []
    with get_client(sync_client=True) as client:
        flow_names = {f.id: f.name for f in client.read_flows()}
        ours = DeploymentFilter(tags=DeploymentFilterTags(all_=["backupflow"]))
        for d in client.read_deployments(deployment_filter=ours):
            key = (flow_names.get(d.flow_id), d.name)
            if d.work_pool_name is None and d.parameters.get("repo") == repo and key not in wanted:
                client.delete_deployment(d.id)
                gone.append(f"{key[0]}/{key[1]}")
    return gone


def plan(source: str | None, repo: str | None, config: str | None = None) -> tuple[list[Job], str | None, str]:
    """The jobs to serve and where from: flags, then the environment, then the configuration.
    Raises a BackupError whose one sentence says what to fix."""
    if config:  # the served runs read it too
        os.environ["BACKUPFLOW_CONFIG"] = os.path.abspath(config)
    settings: Settings = load_settings(config)
    refuse_when_disabled(settings, "serve the schedules")
    b = settings.backup
    repo = repo or os.environ.get("BACKUPFLOW_REPO") or b.repository
    source = source or b.source
    if not repo:
        raise InvalidConfig("No repository given; pass --repo URL, set BACKUPFLOW_REPO or backup_path in the config.")
    jobs = all_jobs(b)
    if any(job.needs_source for job in jobs) and not source:
        raise InvalidConfig("No folder to back up; pass --source DIR or set source in the config's [backup] "
                          "(or auto_backup_enabled = false to serve no backup).")
    if "://" not in repo:  # the scheduled runs must find a local repository from any folder
        repo = os.path.abspath(os.path.expanduser(repo))
    return jobs, os.path.expanduser(source) if source else None, repo


def describe(jobs: list[Job]) -> str:
    return ", ".join(f"{job.name} ({job.cron})" for job in jobs if job.cron) + \
        f" and the panel's {sum(1 for job in jobs if not job.cron)} actions"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source")
    p.add_argument("--repo")
    p.add_argument("--config")
    a = p.parse_args()
    try:
        jobs, source, repo = plan(a.source, a.repo, a.config)
    except BackupError as exc:
        sys.stderr.write(f"backupflow: {exc.message}\n")
        sys.exit(exc.exit_code)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    sys.stderr.write(f"backupflow: serving the schedules of {repo}: {describe(jobs)}; stop with SIGTERM or Ctrl-C.\n")
    sys.stderr.flush()
    try:
        deployments = build(jobs, source, repo)
        try:
            for name in retire_stale(deployments, repo):
                sys.stderr.write(f"backupflow: removed {name}, which the configuration no longer asks for.\n")
        except Exception as exc:  # noqa: BLE001 - serving goes on; serve() reports a server that is gone
            sys.stderr.write(f"backupflow: could not look for deployments the configuration dropped ({exc}).\n")
        serve(*deployments)
    except (Stopped, KeyboardInterrupt):
        pass
    finally:  # also after the runner's own SIGTERM path, which ends with sys.exit(0)
        _say_stopped()


_SAID: list[bool] = []
# How long a stop may take before the process ends anyway: Prefect's start-up can be caught in
# its event loop's shutdown (tasks waiting on the server) or leave threads the interpreter
# waits for at exit, and systemd would wait its 90 s and then SIGKILL.
STOP_GRACE_SECONDS = 15.0


def _say_stopped() -> None:
    if not _SAID:
        _SAID.append(True)
        sys.stderr.write("backupflow: stopped serving.\n")
        sys.stderr.flush()


def _force_exit() -> None:
    _say_stopped()
    os._exit(0)


class Stopped(BaseException):
    """A stop signal arrived before Prefect's runner took over the signal handling.

    A BaseException, like KeyboardInterrupt: raised at any point of Prefect's start-up (an
    import, a coroutine of its event loop), it must not be caught and logged by a handler of
    ``Exception`` there, but end ``serve`` and reach ``main``."""


def _stop(signum: int, frame: FrameType | None) -> None:
    if _in_finalizer(frame):
        # Python prints and drops an exception raised inside a finalizer ("Exception ignored
        # in ... __del__"), and the stop would be lost: send the signal again in a moment.
        threading.Timer(0.2, os.kill, (os.getpid(), signum)).start()
        return
    watchdog = threading.Timer(STOP_GRACE_SECONDS, _force_exit)
    watchdog.daemon = True  # the clean way out, when it is quick, is not held up by it
    watchdog.start()
    raise Stopped(signal.Signals(signum).name)


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    main()
