"""Pictures of the backup panel for the README: ``python -m tests.ui.screenshots`` (from the
repository root, after scripts/install_test_tools.sh) plays the scenario of tests/ui/panel.py
against a Prefect server of its own and saves docs/ui/*.png. Not run by the test suite."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tests.flows.cli_process import cli_env
from tests.prefect_server import PrefectServer
from tests.ui.panel import browser, open_approval_form, page_text, play

OUT = Path(__file__).resolve().parents[2] / "docs" / "ui"


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="bf-shots-"))
    os.environ["XDG_RUNTIME_DIR"] = str(home / "run")  # a runner of its own, stopped at the end
    os.environ["BACKUPFLOW_RUNNER"] = "off"
    server = PrefectServer(home / "prefect", services=True, extra_env={"PREFECT_UI_ENABLED": "true"}).start()
    work = home / "work"
    work.mkdir()
    (work / "config.toml").write_text("[guardian]\ntimeout_seconds = 600\n")
    env = cli_env(server, work, BACKUPFLOW_REPO=str(work / "repo"), BACKUPFLOW_CONFIG=str(work / "config.toml"),
                  BACKUPFLOW_RUNNER="off", BACKUPFLOW_PASSWORD="screenshots")
    OUT.mkdir(parents=True, exist_ok=True)
    driver = None
    try:
        scenario = play(server, env, work, say=lambda s: print("screenshots:", s, file=sys.stderr))
        driver = browser(1400, 1100)
        history, stats = scenario.keys()
        shots = [
            ("runs.png", f"{scenario.ui}/runs", f"backup incremental {scenario.incremental['short_id']}"),
            ("history.png", f"{scenario.ui}/artifacts/artifact/{scenario.latest_artifact(history)}", "description"),
            ("stats.png", f"{scenario.ui}/artifacts/artifact/{scenario.latest_artifact(stats)}", "Growth"),
        ]
        for name, url, expected in shots:
            page_text(driver, url, expected)
            time.sleep(1)
            driver.save_screenshot(str(OUT / name))
        open_approval_form(driver, scenario)
        time.sleep(1)
        driver.save_screenshot(str(OUT / "approval.png"))
        scenario.finish(env, work)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    print(f"screenshots: saved in {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
