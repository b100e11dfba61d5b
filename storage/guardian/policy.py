"""The approval policy as a pure function: a request plus the decisions so far -> a verdict.

Rules (in this order, for each decision as it arrived):
- A risk level the policy does not list in ``require_approval`` is approved without anyone.
- A decision with no approver name is refused.
- The requester may always *reject* (withdraw) their own request.
- Otherwise an approver not in ``approvers`` (when that list is non-empty) is refused.
- The requester approving their own request is refused for critical risk, always, and for
  other levels unless ``allow_self_approval``.
- When the policy needs authentication (it names approvers, forbids self-approval, needs two
  approvers or lists approver keys), a decision counts only if it is signed with a key the
  policy lists for the name it gives (:mod:`storage.guardian.signatures`), unless
  ``trust_server_authentication`` says the Prefect server authenticates every caller.
- The same person, or the same key, approving twice counts once (the second is refused).
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
from storage.guardian.signatures import operation_digest, statement, verify_signature

Status = Literal["approved", "rejected", "pending"]


@dataclass(frozen=True)
class ApprovalRequest:
    operation: dict[str, Any]
    requester: str
    risk: Assessment
    run_id: str | None = None  # the flow run a signed decision must name

    @classmethod
    def from_operation(cls, operation: dict[str, Any], requester: str, run_id: str | None = None) -> "ApprovalRequest":
        return cls(operation=operation, requester=operation.get("requester") or requester, risk=assess(operation),
                   run_id=run_id)

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "requester": self.requester, "risk": self.risk.to_dict(),
                "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ApprovalRequest":
        risk = data["risk"]
        return cls(operation=data["operation"], requester=data["requester"],
                   risk=Assessment(Risk(risk["level"]), risk["reason"]), run_id=data.get("run_id"))


@dataclass(frozen=True)
class Decision:
    approved: bool
    approver: str
    reason: str = ""
    signature: str = ""  # base64 ed25519 signature of the statement (signatures.statement)
    signed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"approved": self.approved, "approver": self.approver, "reason": self.reason}
        if self.signature:
            out.update(signature=self.signature, signed_at=self.signed_at)
        return out

    @classmethod
    def from_answer(cls, data: dict[str, Any]) -> "Decision":
        """From a resume answer (the CLI's, the UI form's or a raw REST call's)."""
        return cls(bool(data.get("approved")), str(data.get("approver") or "").strip(), str(data.get("reason") or ""),
                   str(data.get("signature") or "").strip(), str(data.get("signed_at") or "").strip())


@dataclass
class Verdict:
    status: Status
    reasons: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    needed: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)  # the decisions that counted
    request: dict[str, Any] | None = None  # what they decided on (ApprovalRequest.to_dict)

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


def needs_authentication(policy: GuardianSettings) -> bool:
    """Whether a decision's approver name must be proven (see the module docstring)."""
    return bool(policy.approvers or not policy.allow_self_approval or policy.critical_approvals > 1
                or policy.approver_keys)


def signer(request: ApprovalRequest, decision: Decision, policy: GuardianSettings) -> tuple[str | None, str | None]:
    """(the fingerprint of the key that signed ``decision``, why it does not count)."""
    who = decision.approver
    if not needs_authentication(policy):
        return None, None
    if not decision.signature:
        if policy.trust_server_authentication:
            return None, None
        return None, (f"the answer from {who} is not signed, and this policy counts only decisions signed with "
                      "an approver's key (backupflow approve/reject --key)")
    keys = policy.approver_keys.get(who) or []
    if not keys:
        return None, f"no key is listed for {who} in guardian.approver_keys, so their signature cannot be checked"
    message = statement(request.run_id or "", operation_digest(request.to_dict()), decision.approved, who,
                        decision.reason, decision.signed_at)
    found = verify_signature(keys, who, message, decision.signature)
    if not found:
        return None, f"the signature on {who}'s decision does not verify with the keys listed for {who}"
    return found, None


def refusal(request: ApprovalRequest, decision: Decision, policy: GuardianSettings,
            approved_by: Sequence[str] = (), keys_used: Sequence[str] = ()) -> str | None:
    """Why this one decision does not count, or None when it is valid."""
    who = (decision.approver or "").strip()
    if not who:
        return "a decision must name its approver"
    withdrawing = who == request.requester and not decision.approved
    if policy.approvers and who not in policy.approvers and not withdrawing:
        return f"{who} is not an allowed approver (allowed: {', '.join(policy.approvers)})"
    key, why = signer(request, decision, policy)
    if why:
        return why
    if withdrawing:
        return None
    if decision.approved and key and key in keys_used:
        return f"the key {key} has already approved; a second approval must come from a different key"
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
    keys_used: list[str] = []
    for decision in decisions:
        why = refusal(request, decision, policy, verdict.approvers, keys_used)
        if why:
            verdict.refused.append(why)
            continue
        if not decision.approved:
            verdict.status = "rejected"
            verdict.reasons = [f"rejected by {decision.approver}" + (f": {decision.reason}" if decision.reason else "")]
            return verdict
        verdict.approvers.append(decision.approver.strip())
        verdict.accepted.append(decision.to_dict())
        keys_used.append(signer(request, decision, policy)[0] or "")
        if len(verdict.approvers) >= needed:
            verdict.status = "approved"
            verdict.reasons = [f"approved by {', '.join(verdict.approvers)}"]
            return verdict
    got = len(verdict.approvers)
    verdict.reasons = [f"waiting for {needed - got} more approval{'s' if needed - got > 1 else ''}"
                       + (f" (approved so far by {', '.join(verdict.approvers)})" if got else "")]
    return verdict
