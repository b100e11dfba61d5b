"""The approval step inside flows: ask, wait for people, and let the run go on or stop it.

:func:`request_approval` is a plain function called from a flow body, not a task: the pause
belongs to the flow run, and a task's retries or result cache must never replay a human
decision. It assesses the operation (``storage.guardian``); if the policy needs nobody it
returns at once. Otherwise it audits the request and then, in a flow run on a Prefect server,
pauses the run with ``pause_flow_run(wait_for_input=ApprovalInput, key="approval-N")``. The
Prefect UI shows the description and the resume form; ``backupflow approve/reject`` and
``get_guardian().approve/reject`` resume it with the same input from any process.

A decision the policy refuses (self-approval of a critical request, an approver not on the
list, the same person twice) is audited as ``approval.refused`` and the run goes back to
waiting until the original deadline: a mistaken click in the UI cannot end the request, and a
refused approval cannot approve it. A valid rejection raises :class:`ApprovalRejected`; no
valid answer before ``timeout_seconds`` raises :class:`ApprovalTimeout`, so the run ends
Failed with a message saying why, never Completed.

Outside a server (``PREFECT_API_URL`` unset, or no flow run), the local decider answers: an
approval callback, auto-approval (tests; a warning every time), a terminal prompt, or, with
none of those, a rejection that says how to approve from another terminal.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from prefect import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput, create_flow_run_input
from prefect.logging import get_run_logger
from prefect.settings import get_current_settings
from prefect.states import Failed

from storage.audit import AuditLog, current_user
from storage.config import GuardianSettings, Settings, load_settings
from storage.errors import ApprovalRejected, ApprovalTimeout, BackupError
from storage.guardian import (
    ApprovalRequest, Decision, Verdict, approvals_needed, decide, describe, needs_authentication, summary_line,
)
from storage.guardian.signatures import load_signing_key, sign_decision
from storage.guardian.stored_policy import StoredPolicy, effective_policy, repository_policy
from tasks.audit_events import emit_anchor  # noqa: F401  (anchors the gate's events in Prefect too)
from tasks.repo_access import full_options

_module_logger = logging.getLogger("backupflow.guardian")


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow run (its lines reach the Prefect UI), else this module's."""
    return get_run_logger() if FlowRunContext.get() else _module_logger

REQUEST_KEY = "backupflow-approval-request"
PAUSE_KEY_PREFIX = "approval-"
# Prefect stores each pause's answer under "<state name>-<pause key>-response".
RESPONSE_KEY_PREFIX = f"paused-{PAUSE_KEY_PREFIX}"
POLL_SECONDS = 1  # a decision takes effect within about this long


class ApprovalInput(RunInput):
    """The resume form: shown by the Prefect UI, sent by ``backupflow approve/reject``.

    ``signature``/``signed_at`` carry the approver's signed decision (filled by
    ``backupflow approve --key``); a policy that needs authentication refuses an answer
    without a valid one, whoever sent it, unless it trusts the server's authentication."""

    approved: bool = False
    approver: str = ""
    reason: str = ""
    signature: str = ""
    signed_at: str = ""


@dataclass
class LocalDecider:
    """How a request is answered when there is no Prefect server to pause on."""

    callback: Callable[[dict[str, Any]], Any] | None = None
    auto_approve: bool = False
    # called with (run_id, request dict, ui_url) when a run starts waiting; the CLI prints it
    on_waiting: Callable[[str, dict[str, Any], str | None], None] | None = None
    prompt_input: Callable[[str], str] = field(default=input)
    # Set by the resident runner when it supplied the Prefect server itself (the user set no
    # PREFECT_API_URL): a person at the terminal then answers there, as without a server.
    ask_at_terminal: bool = False


LOCAL = LocalDecider()


def server_url() -> str | None:
    return get_current_settings().api.url


def run_ui_url(run_id: str) -> str | None:
    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else None


def governing_policy(settings: Settings, repo: str | None, options: dict[str, Any] | None) -> GuardianSettings:
    """The repository's policy (or the defaults) made stricter, never laxer, by the local config."""
    stored = repository_policy(repo, full_options(repo, options)) if repo else StoredPolicy()
    for why in stored.skipped:
        _logger().warning("The repository's approval policy %s", why)
    return effective_policy(stored, settings.guardian)


def always_ask(settings: Settings) -> Settings:
    """``settings`` whose policy asks for approval at every risk level (a caller that wants a
    person to confirm, whatever the policy needs; the policy's other rules still apply)."""
    guardian = settings.guardian.model_copy(update={"require_approval": ["low", "medium", "high", "critical"]})
    return settings.model_copy(update={"guardian": guardian})


def request_approval(operation: dict[str, Any], settings: Settings | None = None,
                     audit: AuditLog | None = None, repo: str | None = None,
                     options: dict[str, Any] | None = None,
                     before_asking: Callable[[], None] | None = None) -> Verdict:
    """Return the approving verdict, or raise ApprovalRejected / ApprovalTimeout. ``repo`` (the
    URL) and its ``options`` say whose stored policy governs. ``before_asking`` runs only when
    someone is about to be asked (a run that names itself for the approver)."""
    settings = settings or load_settings()
    policy = governing_policy(settings, repo, options)
    audit = audit or AuditLog(settings.audit_path)
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context and context.flow_run else None
    request = ApprovalRequest.from_operation(operation, current_user(), run_id)
    verdict = _ask(request, policy, audit, run_id, str(operation.get("target") or operation.get("repo") or ""),
                   before_asking)
    verdict.request = request.to_dict()
    return verdict


def _ask(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog, run_id: str | None,
         target: str, before_asking: Callable[[], None] | None = None) -> Verdict:
    needed = approvals_needed(request, policy)
    if needed == 0:
        return decide(request, [], policy)
    if before_asking is not None:
        before_asking()
    audit.log_event("approval.requested", user=request.requester, flow_run_id=run_id, target=target,
                    details={**request.to_dict(), "needed": needed}, outcome="pending")
    at_terminal = LOCAL.ask_at_terminal and sys.stdin is not None and sys.stdin.isatty()
    # A process that set an approval callback or auto-approval (the Python API) answers its own
    # requests, also inside a flow run on a server; the request and decision are audited alike.
    answers_itself = LOCAL.callback is not None or LOCAL.auto_approve
    if run_id and server_url() and not at_terminal and not answers_itself:
        return _wait_in_flow_run(request, policy, audit, run_id, target)
    return _decide_locally(request, policy, audit, run_id, target)


def _wait_in_flow_run(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog,
                      run_id: str, target: str) -> Verdict:
    create_flow_run_input(key=REQUEST_KEY, value={**request.to_dict(), "policy": policy.model_dump()})
    if LOCAL.on_waiting:
        LOCAL.on_waiting(run_id, request.to_dict(), run_ui_url(run_id))
    deadline = time.monotonic() + policy.timeout_seconds
    decisions: list[Decision] = []
    verdict = decide(request, decisions, policy)
    round_ = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _timed_out(request, policy, audit, run_id, target, verdict)
        round_ += 1
        form = ApprovalInput.with_initial_data(
            description=describe(request, verdict.needed, verdict.approvers, _signed_only(policy),
                                 policy.approvers),
            approved=False, approver="", reason="", signature="", signed_at="")
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=max(1, math.ceil(remaining)),
                                    poll_interval=POLL_SECONDS, key=f"{PAUSE_KEY_PREFIX}{round_}")
        except FlowPauseTimeout:
            _timed_out(request, policy, audit, run_id, target, verdict, expire_pause=True)
        decision = Decision.from_answer(answer.model_dump())
        verdict = _record(request, policy, audit, run_id, target, decisions, decision, server_actor(run_id))
        if verdict.status == "approved":
            return verdict


def server_actor(run_id: str) -> str | None:
    """Who the Prefect server says acted on the run last, when it knows: Prefect Cloud names the
    user or service account behind each state change (a related resource of role ``actor``).
    The open-source server has no accounts and records nobody: None. Never fails a decision."""
    query = {"filter": {"resource": {"id": [f"prefect.flow-run.{run_id}"]},
                        "event": {"prefix": ["prefect.flow-run."]}, "order": "DESC"}, "limit": 5}
    try:
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json=query).json().get("events", [])
    except Exception:
        return None
    for event in events:
        for related in event.get("related") or []:
            if related.get("prefect.resource.role") == "actor":
                return related.get("prefect.resource.name") or related.get("prefect.resource.id")
    return None


def _record(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog, run_id: str | None,
            target: str, decisions: list[Decision], decision: Decision, server_user: str | None = None) -> Verdict:
    """Add one decision, audit it (with the user the server names, if any), and raise if it
    rejects the request."""
    refused_before = len(decide(request, decisions, policy).refused)
    decisions.append(decision)
    verdict = decide(request, decisions, policy)
    details = {"decision": decision.to_dict(), "verdict": verdict.to_dict(), "risk": request.risk.to_dict(),
               "server_user": server_user}
    user = decision.approver or "unknown"
    if len(verdict.refused) > refused_before:
        audit.log_event("approval.refused", user=user, flow_run_id=run_id, target=target,
                        details=details, outcome="refused")
        _logger().warning("Approval refused: %s; still waiting for a valid decision.", verdict.refused[-1])
        return verdict
    audit.log_event("approval.decided", user=user, flow_run_id=run_id, target=target,
                    details=details, outcome="approved" if decision.approved else "rejected")
    if verdict.status != "pending":
        _log_outcome(request, audit, run_id, target, verdict.status, verdict.message)
    if verdict.status == "rejected":
        raise ApprovalRejected(f"The {summary_line(request.operation)} was {verdict.message}; nothing was changed.")
    return verdict


def _timed_out(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog, run_id: str | None,
               target: str, verdict: Verdict, expire_pause: bool = False) -> None:
    audit.log_event("approval.timed_out", user=request.requester, flow_run_id=run_id, target=target,
                    details={"timeout_seconds": policy.timeout_seconds, "verdict": verdict.to_dict()},
                    outcome="rejected")
    _log_outcome(request, audit, run_id, target, "rejected", "timed out")
    error = ApprovalTimeout(f"Nobody approved the {summary_line(request.operation)} within "
                            f"{policy.timeout_seconds:g} s, so it was rejected; nothing was changed.")
    if expire_pause and run_id:
        # The server turns any move out of an expired pause into "The flow was paused and never
        # resumed"; set our own Failed state first so the run says it was rejected and why.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Failed(message=f"ApprovalTimeout: {error.message}"), force=True)
    raise error


def _decide_locally(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog,
                    run_id: str | None, target: str) -> Verdict:
    decisions: list[Decision] = []
    if LOCAL.callback is not None:
        for _ in range(approvals_needed(request, policy)):
            verdict = _record(request, policy, audit, run_id, target, decisions,
                              _as_decision(LOCAL.callback(request.to_dict())))
            if verdict.status == "approved":
                return verdict
        return _reject_locally(request, audit, run_id, target, "the approval callback did not give a valid approval "
                               f"({'; '.join(verdict.refused) or verdict.message})")
    if LOCAL.auto_approve:
        _logger().warning("AUTO-APPROVING %s (%s risk): auto-approval is on; never use it in production.",
                       summary_line(request.operation), request.risk.level.value)
        audit.log_event("approval.decided", user="auto-approve", flow_run_id=run_id, target=target,
                        details={"auto_approve": True, "risk": request.risk.to_dict()}, outcome="approved")
        _log_outcome(request, audit, run_id, target, "approved", "auto-approved")
        return Verdict("approved", ["auto-approved"], approvers=["auto-approve"])
    if sys.stdin is not None and sys.stdin.isatty():
        return _prompt(request, policy, audit, run_id, target, decisions)
    return _reject_locally(
        request, audit, run_id, target,
        "it needs approval but there is no Prefect server to pause on and no terminal to ask; to approve it "
        "from another terminal, start a server (`prefect server start`), set PREFECT_API_URL "
        "(e.g. http://127.0.0.1:4200/api), run it again and use `backupflow approve RUN_ID`")


def _reject_locally(request: ApprovalRequest, audit: AuditLog, run_id: str | None, target: str, why: str):
    audit.log_event("approval.decided", user=request.requester, flow_run_id=run_id, target=target,
                    details={"reason": why, "risk": request.risk.to_dict()}, outcome="rejected")
    _log_outcome(request, audit, run_id, target, "rejected", why)
    raise ApprovalRejected(f"The {summary_line(request.operation)} was rejected: {why}.")


def _log_outcome(request: ApprovalRequest, audit: AuditLog, run_id: str | None, target: str,
                 status: str, why: str) -> None:
    """``restore.approved``, ``delete.rejected``...: the operation's own trail, beside approval.*."""
    kind = str(request.operation.get("kind") or "operation")
    audit.log_event(f"{kind}.{status}", user=request.requester, flow_run_id=run_id, target=target,
                    details={"reason": why, "risk": request.risk.to_dict()}, outcome=status)


def _prompt(request: ApprovalRequest, policy: GuardianSettings, audit: AuditLog, run_id: str | None,
            target: str, decisions: list[Decision]) -> Verdict:
    ask = LOCAL.prompt_input
    while True:
        verdict = decide(request, decisions, policy)
        sys.stderr.write("\n" + describe(request, verdict.needed, verdict.approvers) + "\n\n")
        answer = ask("Approve? [y/N] ").strip().lower()
        name = ask(f"Your name [{current_user()}]: ").strip() or current_user()
        reason = ask("Reason: ").strip()
        before = len(verdict.refused)
        verdict = _record(request, policy, audit, run_id, target, decisions,
                          _prompted_decision(request, policy, answer in ("y", "yes"), name, reason))
        if verdict.status == "approved":
            return verdict
        if len(verdict.refused) > before:
            sys.stderr.write(f"Refused: {verdict.refused[-1]}.\n")
            if not ask("Try another approver? [y/N] ").strip().lower().startswith("y"):
                _reject_locally(request, audit, run_id, target, verdict.refused[-1])


def _signed_only(policy: GuardianSettings) -> bool:
    return needs_authentication(policy) and not policy.trust_server_authentication


def _prompted_decision(request: ApprovalRequest, policy: GuardianSettings, approved: bool, name: str,
                       reason: str) -> Decision:
    """The terminal's answer, signed with the key the person names when the policy needs it."""
    if not _signed_only(policy):
        return Decision(approved, name, reason)
    default = os.environ.get("BACKUPFLOW_APPROVER_KEY") or load_settings().approver.key or ""
    path = LOCAL.prompt_input(f"Your ed25519 private key [{default}]: ").strip() or default
    try:
        signed = sign_decision(load_signing_key(path), request.run_id or "", request.to_dict(), approved, name,
                               reason) if path else {}
    except BackupError as exc:
        sys.stderr.write(f"{exc.message}\n")
        signed = {}
    return Decision(approved, name, reason, signed.get("signature", ""), signed.get("signed_at", ""))


def _as_decision(result: Any) -> Decision:
    """A callback may return a bool, (bool, reason), a dict or a Decision."""
    if isinstance(result, Decision):
        return result
    if isinstance(result, dict):
        return Decision.from_answer({**result, "approver": result.get("approver") or "approval-callback"})
    if isinstance(result, tuple):
        return Decision(bool(result[0]), "approval-callback", str(result[1]) if len(result) > 1 else "")
    return Decision(bool(result), "approval-callback", "")
