"""The approval policy as a pure function: a request plus the decisions so far -> a verdict.

Rules (in this order, for each decision as it arrived):
- A risk level the policy does not list in ``require_approval`` is approved without anyone.
- A decision with no approver name is refused.
- The requester may always *reject* (withdraw) their own request.
- Otherwise an approver not in ``approvers`` (when that list is non-empty) is refused.
- The requester approving their own request is refused for critical risk, always, and for
  other levels unless ``allow_self_approval``.
- The same person approving twice counts once (the second is refused).
- A valid rejection rejects the request at once.
- Approved when valid approvals from different people reach the number needed
  (``critical_approvals`` for critical risk, else 1); pending until then.

Refused decisions never change the verdict; they are listed so the caller can audit them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from storage.config import GuardianSettings
from storage.guardian.risk import Assessment, Risk, assess

Status = Literal["approved", "rejected", "pending"]


@dataclass(frozen=True)
class ApprovalRequest:
    operation: dict[str, Any]
    requester: str
    risk: Assessment

    @classmethod
    def from_operation(cls, operation: dict[str, Any], requester: str) -> "ApprovalRequest":
        return cls(operation=operation, requester=operation.get("requester") or requester, risk=assess(operation))

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "requester": self.requester, "risk": self.risk.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ApprovalRequest":
        risk = data["risk"]
        return cls(operation=data["operation"], requester=data["requester"],
                   risk=Assessment(Risk(risk["level"]), risk["reason"]))


@dataclass(frozen=True)
class Decision:
    approved: bool
    approver: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "approver": self.approver, "reason": self.reason}


@dataclass
class Verdict:
    status: Status
    reasons: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    needed: int = 0

    @property
    def message(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": self.reasons, "approvers": self.approvers,
                "refused": self.refused, "needed": self.needed}


def requires_approval(request: ApprovalRequest, policy: GuardianSettings) -> bool:
    return request.risk.level.value in policy.require_approval


def approvals_needed(request: ApprovalRequest, policy: GuardianSettings) -> int:
    if not requires_approval(request, policy):
        return 0
    return policy.critical_approvals if request.risk.level is Risk.CRITICAL else 1


def refusal(request: ApprovalRequest, decision: Decision, policy: GuardianSettings,
            approved_by: Sequence[str] = ()) -> str | None:
    """Why this one decision does not count, or None when it is valid."""
    who = (decision.approver or "").strip()
    if not who:
        return "a decision must name its approver"
    if who == request.requester and not decision.approved:
        return None
    if policy.approvers and who not in policy.approvers:
        return f"{who} is not an allowed approver (allowed: {', '.join(policy.approvers)})"
    if decision.approved and who == request.requester:
        if request.risk.level is Risk.CRITICAL:
            return f"{who} may not approve their own critical request"
        if not policy.allow_self_approval:
            return f"{who} may not approve their own request (allow_self_approval is off)"
    if decision.approved and who in approved_by:
        return f"{who} has already approved; a second approval must come from someone else"
    return None


def decide(request: ApprovalRequest, decisions: list[Decision], policy: GuardianSettings) -> Verdict:
    needed = approvals_needed(request, policy)
    if needed == 0:
        return Verdict("approved", [f"{request.risk.level.value} risk does not need approval"], needed=0)
    verdict = Verdict("pending", needed=needed)
    for decision in decisions:
        why = refusal(request, decision, policy, verdict.approvers)
        if why:
            verdict.refused.append(why)
            continue
        if not decision.approved:
            verdict.status = "rejected"
            verdict.reasons = [f"rejected by {decision.approver}" + (f": {decision.reason}" if decision.reason else "")]
            return verdict
        verdict.approvers.append(decision.approver.strip())
        if len(verdict.approvers) >= needed:
            verdict.status = "approved"
            verdict.reasons = [f"approved by {', '.join(verdict.approvers)}"]
            return verdict
    got = len(verdict.approvers)
    verdict.reasons = [f"waiting for {needed - got} more approval{'s' if needed - got > 1 else ''}"
                       + (f" (approved so far by {', '.join(verdict.approvers)})" if got else "")]
    return verdict
