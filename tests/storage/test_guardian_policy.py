"""Risk levels and the approval policy, as pure functions."""

from __future__ import annotations

import pytest

from storage.config import GuardianSettings
from storage.guardian import ApprovalRequest, Decision, Risk, assess, decide, describe


def restore(create=(), overwrite=(), delete=(), requester="alice"):
    return {"kind": "restore", "repo": "s3://bucket/repo", "snapshot": "abc123", "target": "/srv/ws",
            "requester": requester,
            "preview": {"create": list(create), "overwrite": list(overwrite), "delete": list(delete), "bytes": 5 << 20}}


def delete(last=False, dependants=False, requester="alice"):
    return {"kind": "delete", "repo": "/repo", "snapshots": ["s1", "s2"], "last_snapshot": last,
            "full_with_dependants": dependants, "bytes_freed": 3 << 30, "requester": requester}


@pytest.mark.parametrize("operation, level, words", [
    ({"kind": "backup"}, Risk.LOW, "adds"),
    (restore(create=["a", "b"]), Risk.MEDIUM, "creates 2 files"),
    (restore(), Risk.MEDIUM, "changes no existing file"),
    (restore(create=["a"], overwrite=["b"]), Risk.HIGH, "overwrites 1 existing file"),
    (restore(delete=["c", "d"]), Risk.HIGH, "deletes 2 files"),
    (delete(), Risk.HIGH, "deleting 2 snapshots"),
    (delete(last=True), Risk.CRITICAL, "last snapshot"),
    (delete(dependants=True), Risk.CRITICAL, "depend on"),
    ({"kind": "frobnicate"}, Risk.HIGH, "unknown"),
])
def test_risk_levels_with_reasons(operation, level, words):
    result = assess(operation)
    assert result.level is level
    assert words in result.reason


def req(operation, requester="alice"):
    return ApprovalRequest.from_operation(operation, requester)


def test_low_and_medium_need_no_approval_by_default():
    policy = GuardianSettings()
    assert decide(req({"kind": "backup"}), [], policy).status == "approved"
    assert decide(req(restore(create=["a"])), [], policy).status == "approved"
    assert decide(req(restore(overwrite=["a"])), [], policy).status == "pending"


def test_configured_levels_change_what_needs_approval():
    policy = GuardianSettings(require_approval=["medium", "high", "critical"])
    assert decide(req(restore(create=["a"])), [], policy).status == "pending"


def test_self_approval_is_refused_for_critical_even_when_allowed():
    policy = GuardianSettings(allow_self_approval=True)
    verdict = decide(req(delete(last=True)), [Decision(True, "alice", "mine")], policy)
    assert verdict.status == "pending"
    assert verdict.refused == ["alice may not approve their own critical request"]
    verdict = decide(req(delete(last=True)), [Decision(True, "alice"), Decision(True, "bob", "ok")], policy)
    assert verdict.status == "approved" and verdict.approvers == ["bob"]


def test_self_approval_of_high_follows_the_setting():
    assert decide(req(restore(overwrite=["a"])), [Decision(True, "alice")], GuardianSettings()).status == "approved"
    verdict = decide(req(restore(overwrite=["a"])), [Decision(True, "alice")],
                     GuardianSettings(allow_self_approval=False))
    assert verdict.status == "pending" and "allow_self_approval" in verdict.refused[0]


def test_requester_may_withdraw_their_own_request():
    verdict = decide(req(delete(last=True)), [Decision(False, "alice", "changed my mind")], GuardianSettings())
    assert verdict.status == "rejected" and "changed my mind" in verdict.message


def test_two_person_rule_needs_two_different_approvers():
    policy = GuardianSettings(critical_approvals=2)
    request = req(delete(dependants=True))
    verdict = decide(request, [Decision(True, "bob")], policy)
    assert verdict.status == "pending" and "1 more approval" in verdict.message
    verdict = decide(request, [Decision(True, "bob"), Decision(True, "bob")], policy)
    assert verdict.status == "pending" and "already approved" in verdict.refused[0]
    verdict = decide(request, [Decision(True, "bob"), Decision(True, "carol")], policy)
    assert verdict.status == "approved" and verdict.approvers == ["bob", "carol"]
    # two approvals apply to critical only
    assert decide(req(delete()), [Decision(True, "bob")], policy).status == "approved"


def test_approver_list_is_enforced_and_rejection_wins():
    policy = GuardianSettings(approvers=["bob", "carol"])
    request = req(restore(overwrite=["x"]))
    verdict = decide(request, [Decision(True, "mallory")], policy)
    assert verdict.status == "pending" and "mallory is not an allowed approver" in verdict.refused[0]
    verdict = decide(request, [Decision(False, "mallory", "no"), Decision(False, "carol", "wrong target")], policy)
    assert verdict.status == "rejected" and "carol" in verdict.message
    assert decide(request, [Decision(True, "")], policy).refused == ["a decision must name its approver"]


def test_description_shows_operation_risk_and_preview():
    request = req(restore(create=["new.txt"], overwrite=[f"f{i}" for i in range(25)], delete=["gone.txt"]))
    text = describe(request)
    assert "restore snapshot abc123" in text and "/srv/ws" in text
    assert "HIGH" in text and "25 files overwritten" in text and "and 15 more" in text
    assert "`gone.txt`" in text and "5.0 MiB" in text
    text = describe(req(delete(last=True)), needed=2, approved_by=["bob"])
    assert "CRITICAL" in text and "3.0 GiB" in text and "so far: bob" in text
