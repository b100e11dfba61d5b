"""`backupflow forget/prune` through the CLI against the test Prefect server: deleting waits for
a human, a rejection deletes nothing, the last snapshot needs someone else, dry runs change
nothing, and every step is on the audit record."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from storage import Repository
from storage.audit import AuditLog
from tests.flows.cli_process import cli_env, run, start, wait_for_approval
from tests.suite_password import open_repository

pytestmark = pytest.mark.prefect


@pytest.fixture
def setup(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(200_000))
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    full = repo.backup(str(src)).snapshot_id
    (src / "b.bin").write_bytes(os.urandom(150_000))
    inc = repo.backup(str(src)).snapshot_id
    cfg = tmp_path / "config.toml"
    cfg.write_text("[guardian]\ntimeout_seconds = 60\n")
    work = tmp_path / "cwd"
    work.mkdir()
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(cfg))
    return env, work, repo_dir, full, inc, AuditLog(tmp_path / "audit")


def state(repo_dir: Path) -> tuple[set[str], set[str]]:
    return ({p.name for p in (repo_dir / "snapshots").iterdir()},
            {p.name for p in (repo_dir / "data").rglob("*") if p.is_file()})


def _waiting(proc) -> tuple[str, str]:
    run_id, seen = wait_for_approval(proc, "forget")
    return run_id, "".join(seen)


def test_forgetting_an_incremental_waits_for_approval_then_deletes_and_prunes(setup):
    env, work, repo_dir, full, inc, audit = setup
    before = state(repo_dir)
    proc = start(["forget", inc[:12], "--prune"], env, work)
    run_id, said = _waiting(proc)
    assert "HIGH risk" in said and "deleting 1 snapshot" in said
    assert state(repo_dir) == before  # nothing goes before someone approves
    ok = run(["approve", run_id, "--as", "bob", "--reason", "old test data"], env, work)
    assert ok.returncode == 0, ok.stderr
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert re.fullmatch(rf"forgot 1 snapshot\(s\) \({inc[:8]}\); pruned 1 pack\(s\), \d+\.\d KiB\n", out), out
    snaps, packs = state(repo_dir)
    assert snaps == {full} and packs < before[1]
    assert open_repository(str(repo_dir)).verify(read_data=True).ok
    types = [e["type"] for e in audit.get_events(flow_run_id=run_id)]
    assert types == ["delete.requested", "approval.requested", "approval.decided", "delete.approved",
                     "delete.completed"]
    done = audit.get_events(flow_run_id=run_id)[-1]["details"]
    assert done["forgotten"] == [inc] and done["pruned"]["packs_deleted"] == 1


def test_a_rejected_forget_deletes_nothing_and_exits_non_zero(setup):
    env, work, repo_dir, _, inc, audit = setup
    before = state(repo_dir)
    proc = start(["forget", inc, "--prune"], env, work)
    run_id, _ = _waiting(proc)
    no = run(["reject", run_id, "--as", "bob", "--reason", "still needed"], env, work)
    assert no.returncode == 0, no.stderr
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 11 and "rejected by bob: still needed" in err and "Traceback" not in err
    assert state(repo_dir) == before
    assert [e["type"] for e in audit.get_events(flow_run_id=run_id)][-1] == "delete.rejected"


def test_forgetting_the_last_snapshot_is_critical_and_the_requester_cannot_approve_it(setup):
    env, work, repo_dir, full, _, audit = setup
    before = state(repo_dir)
    proc = start(["forget", full, "--chain", "--prune"], env, work)
    run_id, said = _waiting(proc)
    assert "CRITICAL risk" in said
    mine = run(["approve", run_id, "--reason", "mine"], env, work)  # as the requester (this OS user)
    assert "may not approve their own critical request" in mine.one_sentence_error()
    assert state(repo_dir) == before
    no = run(["reject", run_id, "--as", "bob"], env, work)
    assert no.returncode == 0, no.stderr
    proc.communicate(timeout=90)
    assert proc.returncode == 11 and state(repo_dir) == before
    types = [e["type"] for e in audit.get_events(flow_run_id=run_id)]
    assert types[0] == "delete.requested" and "approval.refused" in types and types[-1] == "delete.rejected"


def test_dry_runs_and_refusals_change_nothing(setup):
    env, work, repo_dir, full, inc, audit = setup
    before = state(repo_dir)
    preview = run(["forget", full, "--chain", "--dry-run", "--json"], env, work).json()
    assert preview["dry_run"] and preview["snapshots"] == [inc, full]
    assert preview["last_snapshot"] and preview["full_with_dependants"]
    assert preview["bytes_freed"] == sum(p.stat().st_size for p in (repo_dir / "data").rglob("*") if p.is_file())
    said = run(["forget", inc, "--dry-run"], env, work).ok().stdout
    assert said.startswith(f"would forget 1 snapshot(s) ({inc[:8]}), freeing ") and "nothing was changed" in said
    refused = run(["forget", full], env, work)
    assert refused.returncode == 2
    assert "--chain" in refused.one_sentence_error() and inc[:8] in refused.stderr
    pruned = run(["prune", "--dry-run", "--json"], env, work).json()
    assert pruned["dry_run"] and pruned["packs_deleted"] == 0
    assert state(repo_dir) == before
    # dry runs are not on the record; the refused request is, with the reason it failed
    events = [e for e in audit.get_events() if e["type"].startswith("delete.")]
    assert [e["type"] for e in events] == ["delete.requested", "delete.failed"]
    assert "--chain" in events[-1]["details"]["error"]


def test_prune_refuses_while_a_backup_runs_then_deletes_a_dead_runs_packs(setup, tmp_path):
    env, work, repo_dir, _, _, audit = setup
    (tmp_path / "src" / "c.bin").write_bytes(os.urandom(120_000))
    repo = open_repository(str(repo_dir))
    plan = repo.plan_backup(str(tmp_path / "src"))  # live: this test process holds the lock
    orphans = repo.store(plan, repo.scan(plan)).packs
    before = state(repo_dir)
    busy = run(["prune"], env, work)
    assert busy.returncode == 7 and "a backup is running" in busy.one_sentence_error()
    assert state(repo_dir) == before
    repo.abandon(plan)  # the run dies without a snapshot: its packs are garbage now
    report = run(["prune", "--json"], env, work).json()
    assert sorted(report["packs"]) == sorted(orphans) and report["bytes_freed"] > 100_000
    assert state(repo_dir)[1] == before[1] - set(orphans)
    types = [e["type"] for e in audit.get_events() if e["type"].startswith("prune.")]
    assert types == ["prune.started", "prune.failed", "prune.started", "prune.completed"]
