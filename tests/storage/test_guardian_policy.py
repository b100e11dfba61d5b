"""Risk levels and the approval policy, as pure functions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from storage.config import GuardianSettings
from storage.guardian import ApprovalRequest, Decision, Risk, assess, decide, describe
from storage.guardian.signatures import sign_decision
from storage.guardian.stored_policy import StoredPolicy, effective_policy

KEYS = {name: Ed25519PrivateKey.generate() for name in ("alice", "bob", "carol", "mallory")}
PUBLIC = {name: [k.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()]
          for name, k in KEYS.items() if name != "mallory"}


def signed(request, approved, who, reason="", key=None):
    """``who``'s decision signed with ``key`` (default: their own)."""
    fields = sign_decision(KEYS[key or who], request.run_id, request.to_dict(), approved, who, reason)
    return Decision(approved, who, reason, fields["signature"], fields["signed_at"])


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
    return ApprovalRequest.from_operation(operation, requester, run_id="run-1")


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
    request = req(restore(overwrite=["a"]))
    assert decide(request, [Decision(True, "alice")], GuardianSettings()).status == "approved"
    strict = GuardianSettings(allow_self_approval=False, approver_keys=PUBLIC)
    verdict = decide(request, [signed(request, True, "alice")], strict)
    assert verdict.status == "pending" and "allow_self_approval" in verdict.refused[0]


def test_requester_may_withdraw_their_own_request():
    verdict = decide(req(delete(last=True)), [Decision(False, "alice", "changed my mind")], GuardianSettings())
    assert verdict.status == "rejected" and "changed my mind" in verdict.message


def test_two_person_rule_needs_two_different_approvers_with_their_own_keys():
    policy = GuardianSettings(critical_approvals=2, approver_keys=PUBLIC)
    request = req(delete(dependants=True))
    bob, carol = signed(request, True, "bob"), signed(request, True, "carol")
    verdict = decide(request, [bob], policy)
    assert verdict.status == "pending" and "1 more approval" in verdict.message
    verdict = decide(request, [bob, bob], policy)
    assert verdict.status == "pending" and "already approved" in verdict.refused[0]
    verdict = decide(request, [bob, signed(request, True, "carol", key="bob")], policy)
    assert verdict.status == "pending" and "does not verify with the keys listed for carol" in verdict.refused[0]
    verdict = decide(request, [bob, carol], policy)
    assert verdict.status == "approved" and verdict.approvers == ["bob", "carol"]
    # one key listed under two names is still one approver
    shared = GuardianSettings(critical_approvals=2, approver_keys={**PUBLIC, "carol": PUBLIC["bob"]})
    verdict = decide(request, [bob, signed(request, True, "carol", key="bob")], shared)
    assert verdict.status == "pending" and "has already approved" in verdict.refused[0]
    # two approvals apply to critical only
    assert decide(req(delete()), [signed(req(delete()), True, "bob")], policy).status == "approved"


def test_approver_list_is_enforced_and_rejection_wins():
    policy = GuardianSettings(approvers=["bob", "carol"], approver_keys=PUBLIC)
    request = req(restore(overwrite=["x"]))
    verdict = decide(request, [signed(request, True, "mallory", key="mallory")], policy)
    assert verdict.status == "pending" and "mallory is not an allowed approver" in verdict.refused[0]
    verdict = decide(request, [signed(request, False, "mallory", "no", key="mallory"),
                               signed(request, False, "carol", "wrong target")], policy)
    assert verdict.status == "rejected" and "carol" in verdict.message
    assert decide(request, [Decision(True, "")], policy).refused == ["a decision must name its approver"]


def test_an_authenticating_policy_refuses_unsigned_or_altered_decisions():
    policy = GuardianSettings(approvers=["bob"], approver_keys=PUBLIC)
    request = req(restore(overwrite=["x"]))
    verdict = decide(request, [Decision(True, "bob", "trust me")], policy)
    assert verdict.status == "pending" and "is not signed" in verdict.refused[0]
    good = signed(request, True, "bob", "ok")
    for altered in (Decision(True, "bob", "other reason", good.signature, good.signed_at),
                    Decision(False, "bob", "ok", good.signature, good.signed_at)):
        assert "does not verify" in decide(request, [altered], policy).refused[0]
    other_run = ApprovalRequest.from_operation(restore(overwrite=["x"]), "alice", run_id="run-2")
    assert "does not verify" in decide(other_run, [good], policy).refused[0]
    other_target = req(restore(overwrite=["y"]))
    assert "does not verify" in decide(other_target, [good], policy).refused[0]
    assert decide(request, [good], policy).status == "approved"
    trusting = GuardianSettings(approvers=["bob"], trust_server_authentication=True)
    assert decide(request, [Decision(True, "bob")], trusting).status == "approved"


def test_description_shows_operation_risk_and_preview():
    request = req(restore(create=["new.txt"], overwrite=[f"f{i}" for i in range(25)], delete=["gone.txt"]))
    text = describe(request)
    assert "restore snapshot abc123" in text and "/srv/ws" in text
    assert "HIGH" in text and "25 files overwritten" in text and "and 15 more" in text
    assert "`gone.txt`" in text and "5.0 MiB" in text
    text = describe(req(delete(last=True)), needed=2, approved_by=["bob"])
    assert "CRITICAL" in text and "3.0 GiB" in text and "so far: bob" in text


def test_a_local_config_makes_the_policy_stricter_never_laxer():
    stored = StoredPolicy(GuardianSettings(require_approval=["high", "critical"], approvers=["bob", "carol"],
                                           timeout_seconds=600, approver_keys=PUBLIC), version=1)
    lax = GuardianSettings(require_approval=[], approvers=["bob", "mallory"], timeout_seconds=10 ** 6,
                           allow_self_approval=True, critical_approvals=1, approver_keys={"mallory": ["x"]},
                           trust_server_authentication=True)
    merged = effective_policy(stored, lax)
    assert merged.require_approval == ["high", "critical"] and merged.approvers == ["bob"]
    assert merged.timeout_seconds == 600 and merged.approver_keys == PUBLIC
    assert not merged.trust_server_authentication
    strict = GuardianSettings(require_approval=["medium"], allow_self_approval=False, critical_approvals=2,
                              timeout_seconds=60)
    merged = effective_policy(stored, strict)
    assert merged.require_approval == ["medium", "high", "critical"] and merged.timeout_seconds == 60
    assert not merged.allow_self_approval and merged.critical_approvals == 2
    # with no stored policy the defaults are what a local config tightens
    assert effective_policy(StoredPolicy(), lax).require_approval == ["high", "critical"]


def test_the_form_says_when_only_signed_decisions_count():
    request = req(restore(overwrite=["a"]))
    assert "Set `approved` and your name" in describe(request)
    text = describe(request, signed_only=True)
    assert "--key" in text and "Set `approved`" not in text
