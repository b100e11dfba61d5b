"""`backupflow cleanup` through the CLI against the test Prefect server, and `cleanup_flow` from
Python: the dry-run table says keep/remove and why for every snapshot and what a prune frees;
a real cleanup waits for approval, then forgets and prunes, and what it kept restores; emptying
a source is critical and the requester cannot approve it; every step is on the audit record."""

from __future__ import annotations

import os
import queue
import re
import signal
import threading

import pytest
from prefect import get_client

from storage import Repository, RetentionPolicy
from storage.archive import list_archives, publish_archive, write_archive
from storage.backend import open_backend
from storage.audit import AuditLog
from tests.flows.cli_process import cli_env, run, start, wait_for_approval
from tests.seed_config import seed_config
from tests.snapshot_clock import backdate
from tests.suite_password import PASSWORD as SUITE_PASSWORD
from tests.treegen import assert_same_tree
from tests.suite_password import open_repository

pytestmark = pytest.mark.prefect


@pytest.fixture
def calendar(prefect_server, tmp_path):
    """Source one: an old chain (full 300 days ago, incremental 250) and a new one (full 100
    days ago, differentials 50 days ago and today); source two: one full 400 days ago."""
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    one, two = tmp_path / "one", tmp_path / "two"
    for src in (one, two):
        src.mkdir()
        (src / "base.bin").write_bytes(os.urandom(120_000))
    made = {}
    made["old-full"] = repo.backup(str(one)).snapshot_id
    (one / "old.bin").write_bytes(os.urandom(90_000))
    made["old-inc"] = repo.backup(str(one)).snapshot_id
    (one / "old.bin").unlink()
    made["full"] = repo.backup(str(one), type="full").snapshot_id
    (one / "d1.bin").write_bytes(os.urandom(50_000))
    made["diff-50"] = repo.backup(str(one), type="differential").snapshot_id
    (one / "d2.bin").write_bytes(os.urandom(50_000))
    made["diff-0"] = repo.backup(str(one), type="differential").snapshot_id
    made["two"] = repo.backup(str(two)).snapshot_id
    moved = backdate(str(repo_dir), {made["old-full"]: 300, made["old-inc"]: 250, made["full"]: 100,
                                     made["diff-50"]: 50, made["two"]: 400})
    ids = {name: moved[sid] for name, sid in made.items()}
    cfg = tmp_path / "config.toml"
    cfg.write_text("[backup]\nretention_days = 60\nkeep_minimum_count = 1\n[guardian]\ntimeout_seconds = 60\n")
    work = tmp_path / "cwd"
    work.mkdir()
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(cfg))
    return env, work, repo_dir, ids, one, AuditLog(tmp_path / "audit")


def state(repo_dir) -> tuple[set[str], set[str]]:
    return ({p.name for p in (repo_dir / "snapshots").iterdir()},
            {p.name for p in (repo_dir / "data").rglob("*") if p.is_file()})




def test_dry_run_prints_every_snapshot_with_its_decision_and_reason(calendar):
    env, work, repo_dir, ids, _, audit = calendar
    before = state(repo_dir)
    out = run(["cleanup", "--dry-run", "--keep-last", "1"], env, work).ok().stdout
    lines = out.splitlines()
    assert lines[0] == "policy: --keep-last 1, retention_days 60, keep_minimum_count 1"
    assert lines[1].split() == ["SNAPSHOT", "TYPE", "TIME", "HOST", "SOURCE", "DECISION", "REASON"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert len(rows) == 6
    assert re.search(r"keep\s+--keep-last; retention_days 60; keep_minimum_count 1$", rows[ids["diff-0"][:8]])
    assert re.search(r"keep\s+retention_days 60$", rows[ids["diff-50"][:8]])
    assert re.search(rf"full .* keep\s+needed by {ids['diff-0'][:8]}$", rows[ids["full"][:8]])
    assert re.search(r"remove\s+older than retention_days 60$", rows[ids["old-inc"][:8]])
    assert re.search(r"remove\s+older than retention_days 60$", rows[ids["old-full"][:8]])
    assert re.search(r"keep\s+--keep-last; keep_minimum_count 1$", rows[ids["two"][:8]])
    assert re.fullmatch(r"would remove 2 snapshot\(s\) and keep 4, freeing \d+\.\d KiB once pruned; "
                        r"nothing was changed", lines[-1]), lines[-1]
    preview = run(["cleanup", "--dry-run", "--json"], env, work).json()  # the config's policy alone
    assert preview["remove"] == [ids["old-inc"], ids["old-full"]] and not preview["last_snapshot"]
    assert preview["bytes_freed"] == open_repository(str(repo_dir)).plan_forget(preview["remove"]).bytes_freed > 0
    assert state(repo_dir) == before
    assert not [e for e in audit.get_events() if e["type"].startswith("cleanup.")]  # a preview is not audited


def test_cleanup_waits_for_approval_then_forgets_prunes_and_what_it_kept_restores(calendar, tmp_path):
    env, work, repo_dir, ids, one, audit = calendar
    before = state(repo_dir)
    proc = start(["cleanup"], env, work)  # the config's policy: retention_days 60, keep_minimum_count 1
    run_id, seen = wait_for_approval(proc, "cleanup")
    assert "HIGH risk" in "".join(seen) and "deleting 2 snapshot" in "".join(seen)
    assert state(repo_dir) == before  # nothing goes before someone approves
    run(["approve", run_id, "--as", "bob", "--reason", "retention"], env, work).ok()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert re.search(rf"removed 2 snapshot\(s\) \({ids['old-inc'][:8]}, {ids['old-full'][:8]}\); "
                     r"pruned \d+ pack\(s\), ", out), out
    snaps, packs = state(repo_dir)
    assert snaps == {ids[n] for n in ("full", "diff-50", "diff-0", "two")} and packs < before[1]
    repo = open_repository(str(repo_dir))
    assert repo.verify(read_data=True).ok
    repo.restore(ids["diff-0"], str(tmp_path / "back"))
    assert_same_tree(one, tmp_path / "back")
    types = [e["type"] for e in audit.get_events(flow_run_id=run_id)]
    assert types == ["cleanup.requested", "approval.requested", "approval.decided", "cleanup.approved",
                     "cleanup.completed"]
    done = audit.get_events(flow_run_id=run_id)[-1]["details"]
    assert done["forgotten"] == [ids["old-inc"], ids["old-full"]] and done["pruned"]["packs_deleted"] >= 1
    # applied again, the policy has nothing left to remove and asks nobody
    again = run(["cleanup"], env, work).ok().stdout
    assert again.splitlines()[-1] == "removed nothing: the policy keeps every snapshot"


def test_emptying_a_source_is_critical_and_the_requester_cannot_approve_it(calendar):
    env, work, repo_dir, ids, _, audit = calendar
    before = state(repo_dir)
    proc = start(["cleanup", "--keep-minimum", "0"], env, work)  # source two's only snapshot would go
    run_id, seen = wait_for_approval(proc, "cleanup")
    assert "CRITICAL risk" in "".join(seen)
    mine = run(["approve", run_id, "--reason", "mine"], env, work)  # as the requester (this OS user)
    assert "may not approve their own critical request" in mine.one_sentence_error()
    run(["reject", run_id, "--as", "bob", "--reason", "two is still needed"], env, work).ok()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 11 and "rejected by bob: two is still needed" in err and "Traceback" not in err
    assert state(repo_dir) == before
    types = [e["type"] for e in audit.get_events(flow_run_id=run_id)]
    assert types[0] == "cleanup.requested" and "approval.refused" in types and types[-1] == "cleanup.rejected"


def test_the_policy_applies_to_archives_too(calendar, tmp_path):
    env, work, repo_dir, ids, _, audit = calendar
    repo, dest = open_repository(str(repo_dir)), open_backend(str(tmp_path / "archives"))
    for name in ("old-full", "old-inc"):  # archived copies, by the time of their snapshots (300 and 250 days)
        snap = repo.snapshots.load(ids[name])
        publish_archive(repo, snap, dest, write_archive(repo, snap, dest, 6), 6)
    args = ["cleanup", "--archive-path", str(tmp_path / "archives"), "--keep-last", "1"]
    lines = run([*args, "--dry-run"], env, work).ok().stdout.splitlines()
    at = lines.index(f"archives at {tmp_path / 'archives'}:")
    rows = {line.split()[0]: line for line in lines[at + 2:-2]}
    assert re.search(r"archive .* remove\s+older than retention_days 60$", rows[ids["old-full"][:8]])
    assert re.search(r"archive .* keep\s+--keep-last; keep_minimum_count 1$", rows[ids["old-inc"][:8]])
    assert re.fullmatch(r"would remove 1 archive\(s\), \d+\.\d KiB; nothing was changed", lines[-1]), lines[-1]
    proc = start(args, env, work)
    run_id, seen = wait_for_approval(proc, "cleanup")
    assert "deleting 3 snapshots" in "".join(seen)  # two snapshots and one archive
    run(["approve", run_id, "--as", "bob"], env, work).ok()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1].startswith(f"removed 1 archive(s) ({ids['old-full'][:8]}), ")
    assert sorted(m.id for m in list_archives(str(tmp_path / "archives"))) == [ids["old-inc"]]
    assert {p.name for p in (tmp_path / "archives").iterdir()} == {f"{ids['old-inc']}.json",
                                                                   f"{ids['old-inc']}.tar.gz"}
    assert audit.get_events(flow_run_id=run_id)[-1]["details"]["archives_removed"] == [ids["old-full"]]


def test_a_cleanup_killed_after_approval_loses_nothing_it_keeps_and_a_rerun_completes_it(calendar, tmp_path):
    env, work, repo_dir, ids, one, _ = calendar
    kept = {ids[n] for n in ("full", "diff-50", "diff-0", "two")}
    # --no-runner: the process killed is the one doing the work
    proc = start(["cleanup", "--no-runner"], env, work)
    run_id, _ = wait_for_approval(proc, "cleanup")
    run(["approve", run_id, "--as", "bob"], env, work).ok()
    proc.send_signal(signal.SIGKILL)  # before, during or after the forget and the prune: all must be safe
    proc.communicate(timeout=60)
    repo = open_repository(str(repo_dir))
    assert kept <= set(repo.snapshots.ids()) and repo.verify(read_data=True).ok
    repo.restore(ids["diff-0"], str(tmp_path / "back"))
    assert_same_tree(one, tmp_path / "back")

    left = repo.plan_cleanup(RetentionPolicy(retention_days=60, minimum=1)).remove
    proc = start(["cleanup"], env, work)
    if left:  # the kill came before the forget: the rerun asks again
        run(["approve", wait_for_approval(proc, "cleanup")[0], "--as", "bob"], env, work).ok()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    repo = open_repository(str(repo_dir))
    assert set(repo.snapshots.ids()) == kept and repo.verify(read_data=True).ok
    assert repo.prune(dry_run=True).packs_deleted == 0  # the rerun pruned what the killed run left


def test_the_seed_block_gives_cleanup_its_policy_and_its_archive_path(calendar):
    env, work, repo_dir, ids, _, _ = calendar
    env = {**env, "BACKUPFLOW_CONFIG": seed_config(work, keep_minimum_count="1")}
    lines = run(["cleanup", "--dry-run"], env, work).ok().stdout.splitlines()
    assert lines[0] == "policy: retention_days 90, keep_minimum_count 1"
    rows = {line.split()[0]: line for line in lines[2:8]}
    assert re.search(r"keep\s+retention_days 90$", rows[ids["diff-50"][:8]])
    assert re.search(r"remove\s+older than retention_days 90$", rows[ids["old-inc"][:8]])
    # archive_path = "data/archives": relative to the command's folder; nothing archived there yet
    assert lines[8:10] == [f"archives at {work / 'data' / 'archives'}:", "no archives"]
    assert lines[-2].startswith("would remove 2 snapshot(s) and keep 4, freeing ")
    assert lines[-1] == "would remove 0 archive(s), 0 B; nothing was changed"


def test_cleanup_of_an_encrypted_repository(prefect_server, tmp_path):
    repo_dir, src, password = tmp_path / "repo", tmp_path / "src", SUITE_PASSWORD  # the CLI's, from the suite
    repo = Repository.init(str(repo_dir), password=password)
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(100_000))
    old = repo.backup(str(src)).snapshot_id
    (src / "a.bin").write_bytes(os.urandom(100_000))
    new = repo.backup(str(src), type="full").snapshot_id
    old = backdate(str(repo_dir), {old: 100}, password=password)[old]
    cfg = tmp_path / "config.toml"
    cfg.write_text("[backup]\nkeep_minimum_count = 0\n[guardian]\ntimeout_seconds = 60\n")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(cfg))
    assert run(["cleanup", "--dry-run", "--json"], env, tmp_path).json()["remove"] == [old]  # retention_days 90
    proc = start(["cleanup"], env, tmp_path)
    run(["approve", wait_for_approval(proc, "cleanup")[0], "--as", "bob"], env, tmp_path).ok()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and f"removed 1 snapshot(s) ({old[:8]}); pruned 1 pack(s)" in out, err
    repo = Repository.open(str(repo_dir), password=password)
    assert repo.snapshots.ids() == [new] and repo.verify(read_data=True).ok


def test_bad_policies_are_one_sentence_and_change_nothing(calendar):
    env, work, repo_dir, _, _, _ = calendar
    before = state(repo_dir)
    for args, words in ((["cleanup", "--keep-within", "soon"], "--keep-within"),
                        (["cleanup", "--keep-daily", "-3"], "--keep-daily"),
                        (["cleanup", "--retention-days", "-1"], "retention_days")):
        res = run(args, env, work)
        assert res.returncode == 2 and words in res.one_sentence_error(), res.stderr
    off = work / "off.toml"
    off.write_text("[backup]\nenable_backups = false\n")
    res = run(["cleanup", "--keep-last", "1", "--config", str(off)], env, work)
    assert res.returncode == 17 and "enable_backups = false" in res.one_sentence_error()
    assert state(repo_dir) == before


def test_cleanup_flow_from_python(calendar, monkeypatch):
    from flows import cleanup_flow
    from flows.approvals import get_guardian

    env, _, repo_dir, ids, _, audit = calendar
    for key in ("BACKUPFLOW_CONFIG", "BACKUPFLOW_AUDIT_PATH"):
        monkeypatch.setenv(key, env[key])
    preview = cleanup_flow(repo=str(repo_dir), keep_monthly=2, keep_minimum_count=0, retention_days=1, dry_run=True)
    reasons = {d["id"]: d["reasons"] for d in preview["decisions"]}
    assert reasons[ids["diff-0"]] == ["--keep-monthly", "retention_days 1"]
    assert reasons[ids["diff-50"]] == ["--keep-monthly"] and reasons[ids["two"]] == ["--keep-monthly"]
    assert reasons[ids["old-full"]] == ["older than retention_days 1"]
    # approved from Python, as a person at another terminal would with `backupflow approve`
    guardian, waiting = get_guardian(), queue.Queue()
    guardian.set_waiting_notifier(lambda run_id, request, url: waiting.put(run_id))
    approver = threading.Thread(target=lambda: guardian.approve(waiting.get(timeout=120), approver="bob"), daemon=True)
    approver.start()
    try:
        result = cleanup_flow(repo=str(repo_dir), keep_monthly=2)
    finally:
        guardian.set_waiting_notifier(None)
    assert set(result["forgotten"]) == {ids["old-full"], ids["old-inc"]} and result["prune"]["packs_deleted"] >= 1
    assert state(repo_dir)[0] == {ids[n] for n in ("full", "diff-50", "diff-0", "two")}
    assert [e["type"] for e in audit.get_events(flow_run_id=result["flow_run_id"])][-1] == "cleanup.completed"
    with get_client(sync_client=True) as client:  # the run's name in the UI says what it did
        assert client.read_flow_run(result["flow_run_id"]).name == f"cleanup {repo_dir}: removed 2 snapshot(s), keeps 4"
