"""Approval without a Prefect server: callback, auto-approval, and failing closed."""

from __future__ import annotations

import logging

import pytest

from flows.approvals import get_guardian
from storage.audit import AuditLog
from storage.config import AuditSettings, Settings
from storage.errors import ApprovalRejected
from tasks.approval_gate import request_approval

OVERWRITE = {"kind": "restore", "repo": "/repo", "snapshot": "s1", "target": "/ws", "requester": "alice",
             "preview": {"create": [], "overwrite": ["a.txt"], "delete": [], "bytes": 10}}
LAST = {"kind": "delete", "repo": "/repo", "snapshots": ["s1"], "last_snapshot": True, "requester": "alice"}


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKUPFLOW_AUDIT_PATH", raising=False)
    guardian = get_guardian()
    yield Settings(audit=AuditSettings(audit_path=str(tmp_path)))
    guardian.set_approval_callback(None)
    guardian.set_auto_approve(False)


def types(settings):
    return [e["type"] for e in AuditLog(settings.audit_path).get_events()]


def test_without_server_callback_or_terminal_it_fails_closed_and_says_how_to_approve(settings):
    with pytest.raises(ApprovalRejected) as err:
        request_approval(OVERWRITE, settings)
    assert "PREFECT_API_URL" in err.value.message and "backupflow approve" in err.value.message
    assert types(settings) == ["approval.requested", "approval.decided", "restore.rejected"]


def test_low_risk_needs_nobody_and_leaves_no_approval_trail(settings):
    assert request_approval({"kind": "backup"}, settings).status == "approved"
    assert types(settings) == []


def test_auto_approve_approves_and_warns_every_time(settings, caplog):
    get_guardian().set_auto_approve(True)
    with caplog.at_level(logging.WARNING, logger="backupflow.guardian"):
        assert request_approval(OVERWRITE, settings).status == "approved"
        assert request_approval(LAST, settings).status == "approved"
    assert sum("AUTO-APPROVING" in r.getMessage() for r in caplog.records) == 2


def test_callback_decides_and_the_policy_still_applies(settings):
    guardian = get_guardian()
    guardian.set_approval_callback(lambda request: (False, "not today"))
    with pytest.raises(ApprovalRejected, match="not today"):
        request_approval(OVERWRITE, settings)
    guardian.set_approval_callback(lambda request: {"approved": True, "approver": request["requester"]})
    with pytest.raises(ApprovalRejected, match="alice may not approve their own critical request"):
        request_approval(LAST, settings)
    seen = []
    guardian.set_approval_callback(lambda request: seen.append(request["risk"]["level"]) or True)
    assert request_approval(LAST, settings).status == "approved"
    assert seen == ["critical"]
    assert "approval.refused" in types(settings)
