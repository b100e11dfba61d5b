"""The backup panel as a user meets it: a scenario run through the installed CLI against a
Prefect server with its UI on, and a headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) that loads its pages.

Used by tests/ui/test_panel_ui.py (checks what renders) and tests/ui/screenshots.py (keeps
pictures in docs/ui/ for the README).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tasks.reports import repository_key
from tests.flows.cli_process import run, start, wait_for_approval
from tests.suite_password import open_repository

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(width: int = 1400, height: int = 1000) -> webdriver.Chrome:
    """Headless Chromium; scripts/install_test_tools.sh installs it (Debian packages)."""
    driver_path = shutil.which("chromedriver") or CHROMEDRIVER
    if not Path(driver_path).exists():
        raise RuntimeError("chromedriver is missing: run scripts/install_test_tools.sh (Debian chromium-driver)")
    options = Options()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver_path))


def page_text(driver: webdriver.Chrome, url: str | None, *expected: str, timeout: float = 60) -> str:
    """Load ``url`` (None: stay on the page) and return the page's text once every ``expected``
    string is in it (the UI fills a page in as its API calls answer), or whatever it shows at
    the deadline."""
    if url is not None:
        driver.get(url)
    deadline = time.monotonic() + timeout
    while True:
        text = driver.find_element(By.TAG_NAME, "body").text
        if all(e in text for e in expected) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


@dataclass
class Scenario:
    ui: str
    api: str
    repo: str
    full: dict[str, Any]
    incremental: dict[str, Any]
    waiting_run: str
    waiting_proc: Any
    failed_run: str

    def latest_artifact(self, key: str, timeout: float = 60) -> str:
        """The id of the newest artifact under ``key`` (sent just after the command answered)."""
        deadline = time.monotonic() + timeout
        while True:
            found = httpx.post(f"{self.api}/artifacts/latest/filter",
                               json={"artifacts": {"key": {"any_": [key]}}}).json()
            if found and found[0]["flow_run_id"] == self.incremental["flow_run_id"] or time.monotonic() > deadline:
                return found[0]["latest_id"]
            time.sleep(0.5)

    def keys(self) -> tuple[str, str]:
        r = open_repository(self.repo)
        return repository_key("history", r), repository_key("stats", r)

    def finish(self, env: dict[str, str], work: Path) -> None:
        """Reject the waiting restore, so nothing is left running."""
        run(["reject", self.waiting_run, "--as", "panel-test", "--reason", "scenario over"], env, work)
        self.waiting_proc.communicate(timeout=120)


def play(server, env: dict[str, str], work: Path, say: Callable[[str], None] = lambda _: None) -> Scenario:
    """A full and an incremental backup, a restore waiting for approval, and a failing run."""
    src = work / "project"
    (src / "src").mkdir(parents=True)
    for i in range(6):
        (src / "src" / f"module{i}.py").write_text(f"def f{i}():\n    return {i}\n" * 200)
    (src / "README.md").write_text("# project\n" * 50)
    repo = env["BACKUPFLOW_REPO"]
    say("backing up (full, then incremental)")
    full = run(["backup", str(src), "--tag", "nightly", "--description", "before the refactor", "--json"],
               env, work).json()
    (src / "src" / "module1.py").write_text("def f1():\n    return 'changed'\n")
    incremental = run(["backup", str(src), "--tag", "nightly", "--json"], env, work).json()
    say("starting a restore that waits for approval")
    target = work / "checkout"
    shutil.copytree(src, target)
    (target / "README.md").write_text("# my unsaved edits\n")
    proc = start(["restore", "latest", str(target)], env, work)
    waiting, _ = wait_for_approval(proc, "restore")
    say("running a restore that fails")
    failed = run(["restore", "0123abcd", str(work / "elsewhere"), "--json"], env, work)
    assert failed.returncode == 3, failed.stderr
    failed_run = _last_run(server.api_url, "restore 0123abcd")
    ui = server.api_url.rsplit("/api", 1)[0]
    return Scenario(ui, server.api_url, repo, full, incremental, waiting, proc, failed_run)


def _last_run(api: str, name_start: str) -> str:
    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 20}).json()
    return next(r["id"] for r in runs if r["name"].startswith(name_start))


def open_approval_form(driver: webdriver.Chrome, scenario: Scenario, timeout: float = 60) -> str:
    """The waiting run's page, its Resume button clicked: the text of the approval dialog."""
    page_text(driver, f"{scenario.ui}/runs/flow-run/{scenario.waiting_run}", "Resume", timeout=timeout)
    for button in driver.find_elements(By.TAG_NAME, "button"):
        if button.text.strip() == "Resume":
            button.click()
            break
    return page_text(driver, None, "Approval needed", "Submit", timeout=timeout)
