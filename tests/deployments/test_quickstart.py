"""The README's first command without a terminal (as CI runs it): the sample runs on a local
Prefect server started for it, the UI address is printed, and it ends, stopping that server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from storage import Repository
from tests.suite_password import SUITE_ENV


def test_quickstart_without_a_terminal_runs_the_sample_on_a_local_server_and_ends(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "BACKUPFLOW_"))
           or k in SUITE_ENV}
    env["BACKUPFLOW_DATA_DIR"] = str(tmp_path / "state")
    out = subprocess.run([sys.executable, "-m", "deployments.quickstart"], env=env, cwd=tmp_path,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "restore identical to the workspace: yes" in out.stdout
    ui = re.search(r"Prefect UI at (http://127\.0\.0\.1:\d+)/runs", out.stdout)
    assert ui, out.stdout
    assert "stopped again" in out.stdout
    assert "Error logging to API" not in out.stdout + out.stderr, "logs sent after the server stopped"
    assert not (tmp_path / "state" / "prefect" / "server.json").exists(), "the demo's server should be stopped"
    assert (tmp_path / "state" / "prefect" / "prefect.db").exists(), "its runs stay in its database"
    # encrypted, with a password nobody had to type: in a file only this user reads, which it names
    secret = tmp_path / "data" / "repository.password"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert str(secret) in out.stdout and "cannot be read by anyone" in out.stdout
    password = secret.read_text().strip()
    assert Repository.open(str(tmp_path / "data" / "repository"), password=password).encrypted
    assert password not in out.stdout + out.stderr
