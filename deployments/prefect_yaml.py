"""Write prefect.yaml from the one definition (deployments/definition.py) and the configuration:

    .venv/bin/python -m deployments.prefect_yaml [--config PATH] [--output prefect.yaml]

The committed prefect.yaml is this module's output for the default configuration
(tests/deployments/test_definition.py checks it); run it again after changing the schedule keys
of ``[backup]``. Deployments are named as under `serve` plus ``-pool``, so the two never replace
each other's. Entrypoints are module paths and there is no pull step: a worker imports the
installed backupflow package from wherever it runs, and needs no checkout at this machine's path.
``source`` and ``repo`` come from BACKUPFLOW_SOURCE and BACKUPFLOW_REPO where `prefect deploy`
runs; a run whose source or repo is empty refuses at once in one sentence (flows/runtime.py).
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from deployments.definition import POOL_SUFFIX, Job, all_jobs
from storage.config import load_settings

HEADER = """\
# Written by `python -m deployments.prefect_yaml` from deployments/definition.py and the
# config's [backup] schedule keys (this file: the defaults); edit those, not this file.
# For a work pool: `prefect work-pool create backupflow --type process`, then, with
# BACKUPFLOW_SOURCE and BACKUPFLOW_REPO set, `prefect deploy --all`; on each machine that runs
# them: install backupflow (pip install /path/to/backupflow, or from git) and
# `prefect worker start --pool backupflow`, with BACKUPFLOW_CONFIG naming its configuration
# (README: Work pools). `backupflow serve` serves the same set without a pool.
"""
WORK_POOL = "backupflow"
PLACES = {"source": "{{ $BACKUPFLOW_SOURCE }}", "repo": "{{ $BACKUPFLOW_REPO }}"}
REQUIRE = "deployments.prefect_yaml.require_places"


def require_places(repo: str = "", source: str | None = None) -> dict[str, Any]:
    """A build step of prefect.yaml: `prefect deploy` stops, creating nothing, when
    BACKUPFLOW_REPO (and, for the backups, BACKUPFLOW_SOURCE) was not set (Prefect would deploy
    the empty value, or the placeholder itself, as the parameter)."""
    for value, env, what in ((source, "BACKUPFLOW_SOURCE", "the folder to back up"),
                             (repo, "BACKUPFLOW_REPO", "the repository URL")):
        if value is not None and (not value.strip() or "{{" in value):
            raise ValueError(f"{env} is not set: set it to {what} before `prefect deploy`, so that no "
                             "deployment gets an empty or placeholder parameter.")
    return {}


def deployment(job: Job) -> dict[str, Any]:
    place = {"source": PLACES["source"]} if job.needs_source or job.takes_source else {}
    build = {"build": [{REQUIRE: {"repo": PLACES["repo"], **place}}]} if place else {}
    return {
        "name": job.name + POOL_SUFFIX,
        "entrypoint": job.entrypoint,
        "description": job.description,
        "tags": ["backupflow"],
        "parameters": {**place, "repo": PLACES["repo"], **job.parameters},
        "schedules": [{"cron": job.cron, "timezone": "UTC"}] if job.cron else [],
        "enforce_parameter_schema": True,
        "work_pool": {"name": WORK_POOL},
        **build,
    }


def render(config: str | None = None) -> str:
    check = {REQUIRE: {"repo": PLACES["repo"]}}  # the backups' own build step asks for the source too
    spec = {"name": "backupflow", "prefect-version": "3.9.1", "build": [check], "push": None, "pull": [],
            "deployments": [deployment(job) for job in all_jobs(load_settings(config).backup)]}
    return HEADER + "\n" + yaml.safe_dump(spec, sort_keys=False, width=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--output", default="prefect.yaml")
    a = p.parse_args()
    with open(a.output, "w") as out:
        out.write(render(a.config))
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
