#!/usr/bin/env bash
# Make .venv (if missing) and install backupflow into it, editable, with the extras named in
# $1 (e.g. "test"). Used by quickstart.sh and test.sh so both install the same way.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ ! -x .venv/bin/python ]]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${1:+[$1]}"
