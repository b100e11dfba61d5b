"""The policy flow: change a repository's approval policy, itself a critical operation.

plan (read the governing version) -> Guardian approval under that version -> store the new
version with the approval that let it in (storage.guardian.stored_policy).
"""

from __future__ import annotations

import getpass
from typing import Any

from pydantic import ValidationError

from flows.runtime import current_flow_run_id, plain_flow
from storage.backend import display_url
from storage.config import GuardianSettings
from storage.errors import InvalidConfig
from storage.guardian.stored_policy import change_operation
from tasks.approval_gate import request_approval
from tasks.audit_events import audited
from tasks.policy import read_repository_policy, store_repository_policy


@plain_flow(name="policy", flow_run_name="change the approval policy", validate_parameters=False)
def policy_flow(repo: str, policy: dict[str, Any], options: dict[str, Any] | None = None,
                requester: str | None = None) -> dict[str, Any]:
    """Make ``policy`` (the fields of ``[guardian]``) the policy of ``repo``, once the
    approvers of its current policy agree."""
    options = options or {}
    requester = requester or getpass.getuser()
    try:
        new = GuardianSettings.model_validate(policy)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidConfig(f"The new policy's setting '{'.'.join(str(p) for p in err['loc'])}' is invalid: "
                            f"{err['msg']}.") from None
    where = display_url(repo)
    with audited("policy", "requested", target=where, repo=repo, user=requester,
                 details={"policy": new.model_dump()}, options=options) as trail:
        current = read_repository_policy(repo, options)
        operation = {**change_operation(where, new, current), "requester": requester}
        verdict = request_approval(operation, repo=repo, options=options)
        stored = store_repository_policy(repo, options, new, current, verdict.request or {}, verdict)
        trail.details.update(version=stored.version, approved_by=verdict.approvers)
    return {"version": stored.version, "policy": new.model_dump(), "approved_by": verdict.approvers,
            "flow_run_id": current_flow_run_id()}
