"""The audit log: every kind of tampering is found and named; concurrent writers lose nothing."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.audit import AuditLog, RepositoryMirror, audit_logger, read_mirror
from storage.audit.chain import event_hash
from storage.backend import MemoryBackend
from storage.errors import IntegrityError


class StepClock:
    """A clock that moves forward one hour per event, so a test writes several day files."""

    def __init__(self, start: datetime, step: timedelta = timedelta(hours=10)):
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def write_days(tmp_path: Path, n: int = 12) -> AuditLog:
    log = AuditLog(tmp_path, clock=StepClock(datetime(2024, 3, 1, tzinfo=timezone.utc)))
    for i in range(n):
        log.log_event("backup.completed", user="alice", target=f"/ws{i}", details={"i": i}, outcome="success")
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def first_problem(log: AuditLog):
    report = log.verify()
    assert not report.ok
    return report.problems[0]


def test_intact_log_verifies_and_chains_across_day_files(tmp_path):
    log = write_days(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("audit_*.jsonl"))
    assert len(files) >= 4 and files[0] == "audit_2024-03-01.jsonl"
    report = log.verify()
    assert report.ok and report.events == 12 and report.files == len(files)
    events = log.get_events()
    assert [e["details"]["i"] for e in events] == list(range(12))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(events, events[1:], strict=False))
    assert set(events[0]) >= {"id", "time", "type", "user", "host", "flow_run_id", "target",
                              "details", "outcome", "log", "prev_hash", "hash"}


def test_edited_event_is_named(tmp_path):
    log = write_days(tmp_path)
    path = tmp_path / "audit_2024-03-02.jsonl"
    text = lines(path)
    text[1] = text[1].replace('"alice"', '"mallory"')
    path.write_text("".join(text))
    problem = first_problem(log)
    assert (problem.file, problem.line) == ("audit_2024-03-02.jsonl", 2)
    assert "edited" in problem.message


def test_inserted_event_is_named(tmp_path):
    log = write_days(tmp_path)
    path = tmp_path / "audit_2024-03-02.jsonl"
    text = lines(path)
    prev = json.loads(text[0])
    # a forger who knows the scheme: a well-formed event chained to its predecessor
    fake = {**prev, "id": "f" * 32, "details": {"i": 99}, "prev_hash": prev["hash"]}
    fake["hash"] = event_hash(fake)
    text.insert(1, json.dumps(fake, sort_keys=True) + "\n")
    path.write_text("".join(text))
    problems = log.verify().problems
    # the forged event itself holds up; the genuine one after it no longer links
    assert [(p.file, p.line) for p in problems] == [("audit_2024-03-02.jsonl", 3)]
    assert "chain is broken" in problems[0].message


def test_reordered_events_are_named(tmp_path):
    log = write_days(tmp_path)
    path = tmp_path / "audit_2024-03-03.jsonl"
    text = lines(path)
    assert len(text) >= 2
    text[0], text[1] = text[1], text[0]
    path.write_text("".join(text))
    problem = first_problem(log)
    assert (problem.file, problem.line) == ("audit_2024-03-03.jsonl", 1)
    assert "chain is broken" in problem.message


def test_deleted_event_is_named(tmp_path):
    log = write_days(tmp_path)
    path = tmp_path / "audit_2024-03-02.jsonl"
    text = lines(path)
    del text[0]
    path.write_text("".join(text))
    problem = first_problem(log)
    assert (problem.file, problem.line) == ("audit_2024-03-02.jsonl", 1)


def test_deleted_day_file_in_the_middle_is_named(tmp_path):
    log = write_days(tmp_path)
    (tmp_path / "audit_2024-03-02.jsonl").unlink()
    problem = first_problem(log)
    assert (problem.file, problem.line) == ("audit_2024-03-03.jsonl", 1)
    assert "day file" in problem.message


def test_events_cut_off_the_end_are_found_and_later_events_keep_the_break(tmp_path):
    log = write_days(tmp_path)
    newest = sorted(tmp_path.glob("audit_*.jsonl"))[-1]
    text = lines(newest)
    newest.write_text("".join(text[:-1]))
    problem = first_problem(log)
    assert problem.file == "audit.head" and "deleted from the end" in problem.message
    # writing on does not paper over the hole: the next event chains to the missing one
    log.log_event("restore.requested", user="bob")
    report = log.verify()
    assert not report.ok and "chain is broken" in report.problems[0].message


def test_moving_an_event_to_another_day_file_is_found(tmp_path):
    log = write_days(tmp_path)
    a, b = tmp_path / "audit_2024-03-02.jsonl", tmp_path / "audit_2024-03-03.jsonl"
    ta, tb = lines(a), lines(b)
    b.write_text(ta[-1] + "".join(tb))
    a.write_text("".join(ta[:-1]))
    assert not log.verify().ok


def _write_many(directory: str, worker: int, count: int) -> None:
    log = AuditLog(directory)
    for i in range(count):
        # long details make torn writes likely if the lock did not hold
        log.log_event("backup.started", user=f"w{worker}", details={"i": i, "pad": "x" * 3000})


def test_eight_processes_lose_no_event_and_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 40)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    log = AuditLog(tmp_path)
    report = log.verify()
    assert report.ok, report.problems[:3]
    events = log.get_events()
    assert len(events) == 320 and len({e["id"] for e in events}) == 320
    for w in range(8):
        assert [e["details"]["i"] for e in events if e["user"] == f"w{w}"] == list(range(40))


def test_threads_lose_no_event(tmp_path):
    import threading
    threads = [threading.Thread(target=_write_many, args=(str(tmp_path), w, 25)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = AuditLog(tmp_path)
    assert log.verify().ok and len(log.get_events()) == 150


def test_queries_filter_by_type_user_since_and_limit(tmp_path):
    log = AuditLog(tmp_path)
    log.log_event("backup.started", user="alice")
    log.log_event("backup.completed", user="alice", outcome="success")
    log.log_event("restore.requested", user="bob")
    log.log_event("restore.rejected", user="carol", outcome="rejected")
    assert [e["type"] for e in log.get_events(event_type="restore")] == ["restore.requested", "restore.rejected"]
    assert [e["type"] for e in log.get_events(event_type="backup.completed")] == ["backup.completed"]
    assert len(log.get_events(user="alice")) == 2
    assert [e["user"] for e in log.get_events(limit=2)] == ["bob", "carol"]
    assert log.get_events(since=datetime.now(timezone.utc) + timedelta(minutes=1)) == []
    assert len(log.get_events(since="1h")) == 4
    summary = log.get_event_summary()
    assert summary["total"] == 4 and summary["by_type"]["backup.started"] == 1
    assert summary["by_user"] == {"alice": 2, "bob": 1, "carol": 1}


def test_audit_logger_follows_the_configured_path(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "trail"))
    monkeypatch.delenv("BACKUPFLOW_CONFIG", raising=False)
    audit_logger.log_event("config.error", user="dave", outcome="failed")
    assert (tmp_path / "trail").is_dir()
    assert [e["user"] for e in audit_logger.get_events(event_type="config.error", limit=5)] == ["dave"]


def test_mirror_holds_the_same_chain_and_refuses_rewrites(tmp_path):
    backend = MemoryBackend()
    log = AuditLog(tmp_path, mirror=RepositoryMirror(backend))
    log.log_event("backup.started")  # before the repository exists: its location stays empty
    assert list(backend.list("")) == []
    backend.save("config", b"{}")
    log = AuditLog(tmp_path / "second", mirror=RepositoryMirror(backend))
    for i in range(3):
        log.log_event("backup.completed", details={"i": i})
    mirrored = read_mirror(backend)
    assert mirrored == log.get_events()
    name = next(iter(backend.list("audit/"))).name
    backend.remove(name)
    backend.save(name, json.dumps({**mirrored[0], "user": "mallory"}).encode())
    with pytest.raises(IntegrityError):
        read_mirror(backend)
