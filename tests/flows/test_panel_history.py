"""The Prefect UI as a backup tool's history: run names that say what happened, one history
table and one statistics page per repository, restore and verify reports. Through the
installed CLI against the test server, read back through the Prefect API as the UI reads them.

The CLI sends the history and statistics right after the command has answered, so they are
polled for (bounded), never assumed present the instant the command exits."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

from flows import backup_flow
from flows.run_names import home_short
from storage import Repository
from storage.archive.meta import ArchiveMeta, publish
from storage.backend import open_backend
from tasks.reports import archive_totals, growth, repository_key, stats_markdown
from tests.flows.cli_process import cli_env, run, start, wait_for_approval
from tests.suite_password import open_repository

pytestmark = pytest.mark.prefect


def run_artifacts(run_id: str, *keys: str, timeout: float = 90) -> dict[str, Any]:
    """The artifacts of flow run ``run_id`` by key, once ``keys`` are among them."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)])))
        by_key = {a.key: a for a in found if a.key}
        if set(keys) <= set(by_key) or time.monotonic() > deadline:
            return by_key
        time.sleep(0.5)


def run_name(run_id: str, expected: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            name = client.read_flow_run(UUID(run_id)).name
        if name == expected or time.monotonic() > deadline:
            return name
        time.sleep(0.5)


@pytest.fixture(scope="module")
def panel(prefect_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("panel")
    src = work / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * 1000)
    os.mkfifo(src / "pipe")  # skipped, with a warning
    cfg = work / "config.toml"
    cfg.write_text("[guardian]\ntimeout_seconds = 120\n")
    repo = str(work / "Backups_Repo")
    env = cli_env(prefect_server, work, BACKUPFLOW_REPO=repo, BACKUPFLOW_CONFIG=str(cfg))
    full = run(["backup", str(src), "--tag", "nightly", "--tag", "panel", "--description", "first of all", "--json"],
               env, work).json()
    (src / "new.txt").write_text("a new file\n")
    diff = run(["backup", str(src), "--type", "differential", "--json"], env, work).json()
    return {"work": work, "src": src, "repo": repo, "env": env, "full": full, "diff": diff}


def test_backup_runs_are_named_by_what_they_made(panel):
    full, diff, src = panel["full"], panel["diff"], panel["src"]
    assert run_name(full["flow_run_id"], f"backup full {full['short_id']} of {src}") == \
        f"backup full {full['short_id']} of {src}"
    assert run_name(diff["flow_run_id"], f"backup differential {diff['short_id']} of {src}") == \
        f"backup differential {diff['short_id']} of {src}"


def run_logs(run_id: str, needle: str, timeout: float = 60) -> list[tuple[int, str, str]]:
    """(level, logger, message) of the run's log lines, once one of them contains ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])))
        lines = [(entry.level, entry.name, entry.message) for entry in logs]
        if any(needle in m for _, _, m in lines) or time.monotonic() > deadline:
            return lines


def test_cli_runs_log_what_each_stage_did_to_the_ui(panel):
    full, src = panel["full"], panel["src"]
    lines = run_logs(full["flow_run_id"], "committed snapshot")
    mine = [(level, m) for level, name, m in lines if name == "backupflow.run"]
    assert (20, f"planned a backup of {src}: full") in mine, lines
    assert (20, f"scanned {src}: 3 files, 3 to read (20.5 KiB), 0 unchanged since the last backup") in mine
    assert any(level == 20 and m.startswith("read 3 files (20.5 KiB); stored ") for level, m in mine)
    assert any(re.fullmatch(rf"committed snapshot {full['short_id']} \(full, chain \w{{8}}\)", m) for _, m in mine)
    assert (30, "pipe is a FIFO; skipped") in mine
    assert not [m for _, name, m in lines if name != "backupflow.run"]  # no Prefect chatter at the CLI's level


def test_each_backup_publishes_the_repository_history_and_statistics(panel):
    full, diff = panel["full"], panel["diff"]
    r = open_repository(panel["repo"])
    history_key, stats_key = repository_key("history", r), repository_key("stats", r)
    assert re.fullmatch(r"history-backups-repo-[0-9a-f]{8}", history_key), history_key
    found = run_artifacts(diff["flow_run_id"], history_key, stats_key, "backup-report")
    assert {history_key, stats_key, "backup-report"} <= set(found), sorted(found)
    rows = json.loads(found[history_key].data)
    assert [row["snapshot"] for row in rows] == [diff["short_id"], full["short_id"]]  # newest first
    assert [row["type"] for row in rows] == ["differential", "full"]
    first = rows[1]
    assert first["tags"] == "nightly, panel" and first["description"] == "first of all"
    assert first["files"] == 3 and first["size"] == "20.5 KiB" and first["added"] != "0 B"
    assert rows[0]["files"] == 4 and rows[0]["source"] == str(panel["src"])
    stats = found[stats_key].data
    assert "| snapshots | 2 in 1 chain(s) |" in stats
    assert f"| oldest | {full['short_id']} " in stats and f"| newest | {diff['short_id']} " in stats
    assert "deduplication ratio" in stats and "compression ratio" in stats and "### Growth" in stats


def test_restore_and_verify_publish_their_reports_and_names(panel):
    env, work, diff = panel["env"], panel["work"], panel["diff"]
    target = work / "restored"
    restored = run(["restore", "latest", str(target), "--json"], env, work).json()
    assert run_name(restored["flow_run_id"], f"restore {diff['short_id']} -> {target}") == \
        f"restore {diff['short_id']} -> {target}"
    report = run_artifacts(restored["flow_run_id"], "restore-report")["restore-report"].data
    assert f"## Restore of {diff['short_id']} from {panel['repo']} into {target}" in report
    assert "| 4 | " in report
    logged = [m for _, _, m in run_logs(restored["flow_run_id"], "restored 4 files")]
    assert f"restored 4 files (20.5 KiB) of {diff['short_id']} into {target}" in logged, logged
    verified = run(["verify", "--json"], env, work).json()
    assert run_name(verified["flow_run_id"], f"verify OK {panel['repo']}") == f"verify OK {panel['repo']}"
    stats_key = repository_key("stats", open_repository(panel["repo"]))
    found = run_artifacts(verified["flow_run_id"], stats_key, "verify-report")
    assert "OK" in found["verify-report"].data and "| snapshots | 2 in 1 chain(s) |" in found[stats_key].data


def test_a_forget_updates_the_history(panel):
    env, work, full, diff = panel["env"], panel["work"], panel["full"], panel["diff"]
    proc = start(["forget", diff["short_id"]], env, work)
    run_id, _ = wait_for_approval(proc, "forget")
    assert run(["approve", run_id, "--as", "bob", "--reason", "test"], env, work).returncode == 0
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    history_key = repository_key("history", open_repository(panel["repo"]))
    rows = json.loads(run_artifacts(run_id, history_key)[history_key].data)
    assert [row["snapshot"] for row in rows] == [full["short_id"]]
    assert run_name(run_id, f"forget {diff['short_id']}") == f"forget {diff['short_id']}"


def test_keys_names_and_growth_are_plain():
    class Fake:
        url = "s3://Bucket/My Backups.2026/"
        config = type("C", (), {"id": "ABCDEF0123456789"})()
    assert repository_key("stats", Fake()) == "stats-my-backups-2026-abcdef01"  # type: ignore[arg-type]
    home = str(Path.home())
    assert home_short(home + "/work") == "~/work" and home_short("/srv/x") == "/srv/x"
    snaps = [type("S", (), {"time": t, "stats": {"bytes_added": n}})() for t, n in
             (("2026-10-01T00:00", 5), ("2026-10-09T00:00", 1), ("2026-11-02T00:00", 10))]
    assert growth(snaps) == [("2026-10", 2, 6, 6), ("2026-11", 1, 10, 16)]  # type: ignore[arg-type]


def test_the_statistics_count_this_repositorys_archives(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a" * 5000)
    r = Repository.init(str(tmp_path / "repo"))
    snap = r.backup(str(src)).snapshot_id
    dest = str(tmp_path / "archive")
    (tmp_path / "archive").mkdir()
    backend = open_backend(dest)
    for sid, repo_id in ((snap, r.config.id), ("f" * 64, "another-repository")):
        publish(backend, ArchiveMeta(id=sid, file=f"{sid}.tar.gz", sha256="0" * 64, bytes=2048, files=1,
                                     content_bytes=5000, type="full", source=str(src), host="h",
                                     time="2026-11-01T00:00:00+00:00", archived_at="2026-12-01T00:00:00+00:00",
                                     repository_id=repo_id))
    rows = archive_totals(r, dest)
    assert rows == {"archives": f"1 at {dest}", "archived data": "4.9 KiB in 2.0 KiB of tar.gz",
                    "oldest archived": f"{snap[:8]} 2026-11-01 00:00:00"}
    text = stats_markdown(r, rows)
    assert f"| archives | 1 at {dest} |" in text and "| snapshots | 1 in 1 chain(s) |" in text
    (tmp_path / "no-archives").mkdir()
    assert archive_totals(r, str(tmp_path / "no-archives")) == {}  # no rows: the page says nothing of archives


def test_runs_outside_the_cli_publish_before_they_end_and_log_too(prefect_server, tmp_path):
    """As on a worker: the flow called from Python sends its history, statistics, run name and
    log lines before it returns (nothing is deferred outside the CLI)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a" * 3000)
    repo = str(tmp_path / "worker-repo")
    summary = backup_flow(source=str(src), repo=repo, tags=["worker"])
    run_id = summary["flow_run_id"]
    r = open_repository(repo)
    found = run_artifacts(run_id, repository_key("history", r), repository_key("stats", r), timeout=0)
    rows = json.loads(found[repository_key("history", r)].data)
    assert [(row["snapshot"], row["tags"]) for row in rows] == [(summary["short_id"], "worker")]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(run_id)).name == f"backup full {summary['short_id']} of {src}"
    lines = run_logs(run_id, "committed snapshot")
    assert any(m.startswith(f"committed snapshot {summary['short_id']}") for _, _, m in lines), lines
