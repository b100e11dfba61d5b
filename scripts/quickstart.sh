#!/usr/bin/env bash
# From a fresh clone: install backupflow, then back up a sample workspace into a local
# repository, restore it, verify it, on Prefect's embedded server (SQLite, no cloud account).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_venv.sh
exec .venv/bin/python -m deployments.quickstart "$@"
