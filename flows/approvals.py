"""The Python front door to approvals: ``get_guardian()``.

``approve``/``reject`` answer a paused run from any process by resuming it with the
:class:`~tasks.approval_gate.ApprovalInput` the run waits for (``resume_flow_run(run_id,
run_input={...})``; the server stores it under the pause's keyset, so the caller needs no key).
With ``key`` (an SSH ed25519 private key file) the decision is signed
(:mod:`storage.guardian.signatures`), which a policy that needs authentication requires; the
approver's name is then the one the policy lists for that key unless given.

Before resuming, the decision is checked against the policy recorded with the request, so a
refused approval (self-approval of a critical request, an approver not on the list, the same
person or key twice, a missing or bad signature) is reported at once and audited, and the run
keeps waiting. The run checks again on its side after every resume, which covers answers
given in the Prefect UI or by a raw REST call.

``set_approval_callback`` and ``set_auto_approve`` configure how requests are answered when
there is no Prefect server (see :mod:`tasks.approval_gate`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound, PrefectHTTPStatusError

from storage.audit import AuditLog, current_user
from storage.config import GuardianSettings, load_settings
from storage.errors import ApprovalTimeout, InvalidConfig, InvalidInput, NotFound
from storage.guardian import ApprovalRequest, Decision, decide, needs_authentication, summary_line
from storage.guardian.signatures import fingerprint, load_signing_key, parse_public_key, sign_decision
from tasks.approval_gate import (
    LOCAL, REQUEST_KEY, RESPONSE_KEY_PREFIX, ApprovalInput, request_approval, run_ui_url, server_url,
)

WAIT_FOR_PAUSE_SECONDS = 10.0  # between two approvals the run re-pauses; give it a moment


class Guardian:
    """Answers paused runs and configures the local (serverless) decider."""

    # -- local decider -----------------------------------------------------------------------

    def set_approval_callback(self, fn: Callable[[dict[str, Any]], Any] | None) -> None:
        """``fn(request) -> bool | (bool, reason) | {"approved", "approver", "reason"}``."""
        LOCAL.callback = fn

    def set_auto_approve(self, enabled: bool = True) -> None:
        """For tests: approve everything (a warning is logged every time)."""
        LOCAL.auto_approve = bool(enabled)

    def set_waiting_notifier(self, fn: Callable[[str, dict[str, Any], str | None], None] | None) -> None:
        """``fn(run_id, request, ui_url)`` is called when a run starts waiting for a decision."""
        LOCAL.on_waiting = fn

    # -- answering paused runs ---------------------------------------------------------------

    def approve(self, run_id: str, approver: str | None = None, reason: str = "",
                key: str | None = None) -> dict[str, Any]:
        """Approve; ``key`` (an ed25519 private key file) signs the decision."""
        return self._answer(run_id, True, approver, reason, key)

    def reject(self, run_id: str, approver: str | None = None, reason: str = "",
               key: str | None = None) -> dict[str, Any]:
        return self._answer(run_id, False, approver, reason, key)

    def pending(self) -> list[dict[str, Any]]:
        """Runs paused and waiting for a decision, oldest first."""
        _require_server()
        paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
        out = []
        with _client() as client:
            for run in client.read_flow_runs(flow_run_filter=paused, limit=200):
                record = _read_request(client, run.id)
                item: dict[str, Any] = {
                    "run_id": str(run.id), "run_name": run.name, "ui_url": run_ui_url(str(run.id)),
                    "paused_since": run.state.timestamp.isoformat() if run.state else None,
                    "expires": (run.state.state_details.pause_timeout.isoformat()
                                if run.state and run.state.state_details.pause_timeout else None),
                    "operation": None, "summary": None, "risk": None, "reason": None, "requester": None,
                    "approvals_needed": None, "approved_by": [],
                }
                if record:
                    request = ApprovalRequest.from_dict(record)
                    verdict = decide(request, _prior_decisions(client, run.id), _policy(record))
                    item.update(operation=request.operation, summary=summary_line(request.operation),
                                risk=request.risk.level.value, reason=request.risk.reason,
                                requester=request.requester, approvals_needed=verdict.needed,
                                approved_by=verdict.approvers)
                out.append(item)
        return sorted(out, key=lambda i: i["paused_since"] or "")

    def _answer(self, run_id: str, approved: bool, approver: str | None, reason: str,
                key: str | None = None) -> dict[str, Any]:
        _require_server()
        flow_run_id = _parse_run_id(run_id)
        word = "approve" if approved else "reject"
        signing_key = load_signing_key(key) if key else None
        with _client() as client:
            record = _wait_until_paused(client, flow_run_id)
            request = ApprovalRequest.from_dict({"run_id": str(flow_run_id), **record})
            policy = _policy(record)
            who = (approver or _name_of_key(policy, signing_key) or current_user()).strip()
            signed = sign_decision(signing_key, str(flow_run_id), request.to_dict(), approved, who, reason) \
                if signing_key else {}
            decision = Decision(approved, who, reason, signed.get("signature", ""), signed.get("signed_at", ""))
            prior = _prior_decisions(client, flow_run_id)
            before = decide(request, prior, policy)
            verdict = decide(request, prior + [decision], policy)
            if len(verdict.refused) > len(before.refused):
                why = verdict.refused[-1]
                if not signing_key and needs_authentication(policy):
                    why += f"; pass --key with the ed25519 private key listed for {who}"
                _audit_refused(request, decision, flow_run_id, why)
                raise InvalidInput(f"Cannot {word} run {flow_run_id}: {why}; the run is still waiting.")
            answer = ApprovalInput(approved=approved, approver=who, reason=reason,
                                   signature=signed.get("signature", ""), signed_at=signed.get("signed_at", ""))
            fields = {"approved", "approver", "reason", "signature", "signed_at"}
            try:
                response = client.resume_flow_run(flow_run_id, run_input=answer.model_dump(include=fields))
            except FlowPauseTimeout:
                raise ApprovalTimeout(f"Run {flow_run_id} waited too long and was rejected; "
                                      "start the operation again.") from None
            if response.status.value not in ("ACCEPT",):
                why = getattr(response.details, "reason", None) or response.status.value.lower()
                raise InvalidInput(f"Prefect refused to resume run {flow_run_id}: {why}.")
        return {"run_id": str(flow_run_id), "decision": "approved" if approved else "rejected",
                "approver": who, "reason": reason, "status": verdict.status, "signed_with": signed.get("key"),
                "approvals_needed": verdict.needed, "approved_by": verdict.approvers,
                "summary": summary_line(request.operation)}


def _name_of_key(policy: GuardianSettings, key) -> str | None:
    """The approver whose listed public key ``key`` is, so ``--key`` alone says who you are."""
    if key is None:
        return None
    mine = fingerprint(key.public_key())
    for name, lines in policy.approver_keys.items():
        if any(fingerprint(parse_public_key(line, name)) == mine for line in lines):
            return name
    return None


def _audit_refused(request: ApprovalRequest, decision: Decision, flow_run_id: UUID, why: str) -> None:
    AuditLog(load_settings().audit_path).log_event(
        "approval.refused", user=decision.approver, flow_run_id=str(flow_run_id),
        target=str(request.operation.get("target") or request.operation.get("repo") or ""),
        details={"decision": decision.to_dict(), "reason": why}, outcome="refused")


_GUARDIAN: Guardian | None = None


def get_guardian() -> Guardian:
    global _GUARDIAN
    if _GUARDIAN is None:
        _GUARDIAN = Guardian()
    return _GUARDIAN


def _require_server() -> str:
    url = server_url()
    if not url:
        raise InvalidConfig("No Prefect server is set; set PREFECT_API_URL to the server the run waits on "
                            "(for example http://127.0.0.1:4200/api).")
    return url


class _client:
    """A sync Prefect client whose connection errors become one clear sentence."""

    def __enter__(self):
        self._cm = get_client(sync_client=True)
        try:
            return self._cm.__enter__()
        except httpx.HTTPError as exc:
            raise InvalidConfig(f"Cannot reach the Prefect server at {server_url()} ({exc}); "
                                "start it or fix PREFECT_API_URL.") from None

    def __exit__(self, exc_type, exc, tb):
        self._cm.__exit__(exc_type, exc, tb)
        if isinstance(exc, httpx.ConnectError):
            raise InvalidConfig(f"Cannot reach the Prefect server at {server_url()}; "
                                "start it or fix PREFECT_API_URL.") from None
        return False


def _parse_run_id(run_id: str) -> UUID:
    try:
        return UUID(str(run_id).strip())
    except ValueError:
        raise InvalidInput(f"{run_id!r} is not a flow run id; copy it from `backupflow pending`.") from None


def _read_request(client, flow_run_id: UUID) -> dict[str, Any] | None:
    try:
        value = client.read_flow_run_input(flow_run_id, REQUEST_KEY)
    except ObjectNotFound:
        return None
    except PrefectHTTPStatusError as exc:  # the sync client reports a missing input as a bare 404
        if exc.response.status_code == 404:
            return None
        raise
    return json.loads(value) if isinstance(value, str) else value


def _policy(record: dict[str, Any]) -> GuardianSettings:
    return GuardianSettings.model_validate(record.get("policy") or {})


def _prior_decisions(client, flow_run_id: UUID) -> list[Decision]:
    inputs = client.filter_flow_run_input(flow_run_id, key_prefix=RESPONSE_KEY_PREFIX, limit=100, exclude_keys=set())
    out = []
    for item in sorted(inputs, key=lambda i: i.created or 0):
        if not item.key.endswith("-response"):
            continue
        data = json.loads(item.value) if isinstance(item.value, str) else item.value
        out.append(Decision.from_answer(data))
    return out


def _wait_until_paused(client, flow_run_id: UUID) -> dict[str, Any]:
    """The run's request record once the run is paused; between two approvals a run is
    briefly Running before it pauses again, so wait a little rather than fail."""
    deadline = time.monotonic() + WAIT_FOR_PAUSE_SECONDS
    while True:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise NotFound(f"There is no flow run {flow_run_id} on the Prefect server at {server_url()}.") from None
        state = run.state
        record = _read_request(client, flow_run_id)
        if state is not None and state.is_paused():
            if record is None:
                raise InvalidInput(f"Run {flow_run_id} is paused but not waiting for a backupflow approval.")
            return record
        if record is None or (state is not None and state.is_final()) or time.monotonic() > deadline:
            name = state.name if state else "unknown"
            raise InvalidInput(f"Run {flow_run_id} is not waiting for approval (it is {name}).")
        time.sleep(0.3)


__all__ = ["ApprovalInput", "Guardian", "get_guardian", "request_approval"]
