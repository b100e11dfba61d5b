"""Seen, not assumed: the Prefect UI, loaded in headless Chromium, shows the repository's
history table, its statistics, the waiting restore's approval form and the failed run, with
the right content."""

from __future__ import annotations

import pytest

from tests.flows.cli_process import cli_env
from tests.ui.panel import browser, open_approval_form, page_text, play

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def seen(panel_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("ui")
    (work / "config.toml").write_text("[guardian]\ntimeout_seconds = 300\n")
    env = cli_env(panel_server, work, BACKUPFLOW_REPO=str(work / "repo"), BACKUPFLOW_CONFIG=str(work / "config.toml"))
    scenario = play(panel_server, env, work)
    driver = browser()
    try:
        yield scenario, driver
    finally:
        driver.quit()
        scenario.finish(env, work)


def test_the_history_table_lists_every_snapshot(seen):
    scenario, driver = seen
    history_key, _ = scenario.keys()
    full, inc = scenario.full, scenario.incremental
    text = page_text(driver, f"{scenario.ui}/artifacts/artifact/{scenario.latest_artifact(history_key)}",
                     full["short_id"], "before the refactor", f"backup incremental {inc['short_id']} of ")
    assert "time (UTC) snapshot type tags description size files added source" in text, text
    assert text.index(inc["short_id"]) < text.index(full["short_id"])  # newest first
    assert "before the refactor" in text and "nightly" in text and "incremental" in text
    assert f"backup incremental {inc['short_id']} of " in text  # the run it came from, by its name


def test_the_statistics_page_renders_as_a_table(seen):
    scenario, driver = seen
    _, stats_key = scenario.keys()
    text = page_text(driver, f"{scenario.ui}/artifacts/artifact/{scenario.latest_artifact(stats_key)}",
                     "deduplication ratio", "Growth", f"newest {scenario.incremental['short_id']}")
    assert f"Repository {scenario.repo}" in text
    assert "snapshots 2 in 1 chain(s)" in text and "compression ratio" in text
    assert f"newest {scenario.incremental['short_id']}" in text and "Growth" in text


def test_the_approval_form_shows_the_short_id_and_what_would_change(seen):
    scenario, driver = seen
    text = open_approval_form(driver, scenario)
    short, full_id = scenario.incremental["short_id"], scenario.incremental["snapshot_id"]
    assert f"Approval needed: restore snapshot {short} from" in text and full_id not in text
    assert "1 file overwritten: README.md" in text, text
    assert "6 existing files already as in the snapshot (not counted)" in text
    assert "Approver" in text and "Reason" in text and "Submit" in text


def test_the_failed_run_says_why(seen):
    scenario, driver = seen
    text = page_text(driver, f"{scenario.ui}/runs/flow-run/{scenario.failed_run}", "restore 0123abcd", "Failed")
    assert "restore 0123abcd" in text and "Failed" in text
