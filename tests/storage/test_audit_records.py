"""The audit log's record of which snapshots should exist (storage/audit/records.py)."""

from __future__ import annotations

from storage.audit import AuditLog
from storage.audit.records import recorded_snapshots


def test_backups_count_until_a_forget_or_repair_removes_them(tmp_path):
    log = AuditLog(tmp_path / "audit")
    for sid in ("a" * 64, "b" * 64, "c" * 64):
        log.log_event("backup.completed", target="/src", details={"repo": "/repo", "snapshot": sid})
    log.log_event("backup.completed", target="/src", details={"repo": "/other", "snapshot": "d" * 64})
    log.log_event("delete.completed", details={"repo": "/repo", "forgotten": ["a" * 64]})
    log.log_event("repair.completed", details={"repo": "/repo", "removed": ["b" * 64],
                                               "replaced": {"b" * 64: "e" * 64}})
    known = recorded_snapshots(log, "/repo")
    assert sorted(known) == ["c" * 64, "e" * 64]
    assert known["c" * 64].startswith("backup of /src at ")


def test_a_forget_that_never_finished_makes_earlier_snapshots_uncertain(tmp_path):
    log = AuditLog(tmp_path / "audit")
    log.log_event("backup.completed", target="/src", details={"repo": "/repo", "snapshot": "a" * 64})
    log.log_event("delete.requested", flow_run_id="run-1", details={"repo": "/repo", "snapshots": ["aaaa"]})
    # killed here: no delete.completed, but it may have deleted the manifest
    log.log_event("backup.completed", target="/src", details={"repo": "/repo", "snapshot": "b" * 64})
    log.log_event("delete.requested", flow_run_id="run-2", details={"repo": "/repo", "snapshots": ["cccc"]})
    log.log_event("delete.rejected", flow_run_id="run-2", details={"reason": "no"})
    assert sorted(recorded_snapshots(log, "/repo")) == ["b" * 64]


def test_events_from_before_the_repository_was_made_belong_to_an_earlier_one(tmp_path):
    log = AuditLog(tmp_path / "audit")
    log.log_event("backup.completed", target="/src", details={"repo": "/repo", "snapshot": "a" * 64})
    later = "2999-01-01T00:00:00+00:00"   # the repository at /repo was deleted and made again then
    assert sorted(recorded_snapshots(log, "/repo")) == ["a" * 64]
    assert recorded_snapshots(log, "/repo", later) == {}
    assert sorted(recorded_snapshots(log, "/repo", "2000-01-01T00:00:00+00:00")) == ["a" * 64]
