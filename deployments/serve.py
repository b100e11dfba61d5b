"""Serve backupflow's scheduled deployments from this process (no work pool needed).

    .venv/bin/python -m deployments.serve --source ~/work --repo /backups/repo \
        --backup-cron "0 2 * * *" --verify-cron "0 4 * * 0" --prune-cron "0 5 * * 0"

The nightly backup, the weekly full verify and the weekly prune (an hour after the verify)
then appear under Deployments in the Prefect UI, run on schedule, and can be started by hand
from there. prefect.yaml declares the same deployments for a work pool (`prefect deploy --all`).

The first SIGTERM or SIGINT stops the process cleanly (exit 0, one line, no traceback) at any
moment, also while the deployments are still being registered, so systemd's `systemctl stop`
never has to wait for its timeout and SIGKILL. Once serving, Prefect's runner takes SIGTERM
over: it pauses the schedules and cancels runs in flight (a cancelled backup leaves no
snapshot; its packs are reused by the next run).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from prefect import serve

from flows.backup import backup_flow
from flows.forget import prune_flow
from flows.verify import verify_flow


# Prune and verify at different times: a verify holds a read lease, so a prune started in
# the same minute would be refused (or, without leases, disturb the verify).
DEFAULT_PRUNE_CRON = "0 5 * * 0"


def build(source: str, repo: str, backup_cron: str, verify_cron: str, prune_cron: str = DEFAULT_PRUNE_CRON):
    if prune_cron == verify_cron:
        raise ValueError(f"The prune schedule {prune_cron!r} equals the verify schedule; give them different times.")
    backup = backup_flow.to_deployment(
        name="scheduled-backup", cron=backup_cron, tags=["backupflow"],
        parameters={"source": os.path.abspath(source), "repo": repo},
        description="Incremental backup on a schedule (a full one starts each new chain).",
    )
    verify = verify_flow.to_deployment(
        name="weekly-verify", cron=verify_cron, tags=["backupflow"],
        parameters={"repo": repo, "read_data": True},
        description="Read back every pack and check every chunk hash.",
    )
    prune = prune_flow.to_deployment(
        name="weekly-prune", cron=prune_cron, tags=["backupflow"], parameters={"repo": repo},
        description="Delete data no snapshot needs any more (skipped while a backup runs).",
    )
    return [backup, verify, prune]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True)
    p.add_argument("--repo", default=os.environ.get("BACKUPFLOW_REPO"), required=not os.environ.get("BACKUPFLOW_REPO"))
    p.add_argument("--backup-cron", default="0 2 * * *")
    p.add_argument("--verify-cron", default="0 4 * * 0")
    p.add_argument("--prune-cron", default=DEFAULT_PRUNE_CRON)
    a = p.parse_args()
    if a.prune_cron == a.verify_cron:
        p.error("--prune-cron must differ from --verify-cron: a prune and a verify at the same time "
                "get in each other's way")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    sys.stderr.write(f"backupflow: serving the schedules of {a.repo}; stop with SIGTERM or Ctrl-C.\n")
    sys.stderr.flush()
    try:
        serve(*build(a.source, a.repo, a.backup_cron, a.verify_cron, a.prune_cron))
    except (Stopped, KeyboardInterrupt):
        pass
    finally:  # also after the runner's own SIGTERM path, which ends with sys.exit(0)
        sys.stderr.write("backupflow: stopped serving.\n")


class Stopped(BaseException):
    """A stop signal arrived before Prefect's runner took over the signal handling.

    A BaseException, like KeyboardInterrupt: raised at any point of Prefect's start-up (an
    import, a coroutine of its event loop), it must not be caught and logged by a handler of
    ``Exception`` there, but end ``serve`` and reach ``main``."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


if __name__ == "__main__":
    main()
