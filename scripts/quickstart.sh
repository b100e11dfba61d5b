#!/usr/bin/env bash
# From a fresh clone: install backupflow, then back up a sample workspace into a local
# repository, restore it, verify it, on a local Prefect server (SQLite, no cloud account).
# In a terminal it then serves the schedules and the Prefect UI in the foreground (Ctrl-C
# stops it); without one (CI), or with --no-serve, it ends after the sample.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_venv.sh
serve=0
if [[ -t 0 && -t 1 && " $* " != *" --no-serve "* ]]; then
    serve=1
fi
BACKUPFLOW_QUICKSTART_SERVE=$serve .venv/bin/python -m deployments.quickstart
if [[ $serve == 1 ]]; then
    echo
    # the sample repository is encrypted; deployments.quickstart made its password file
    BACKUPFLOW_PASSWORD_FILE="$ROOT/data/repository.password" \
        exec .venv/bin/backupflow serve --source data/sample-workspace --repo data/repository
fi
