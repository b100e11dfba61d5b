#!/usr/bin/env bash
# The whole test suite from a fresh clone: make the virtualenv, install backupflow with its test
# extras, install the protocol servers the cloud tests start (moto, fake-gcs-server, Azurite),
# then run pytest. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_venv.sh test
bash scripts/install_test_tools.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
unset PREFECT_API_URL
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
