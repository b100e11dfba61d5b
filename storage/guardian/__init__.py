"""storage.guardian: who may do what destructive thing, decided without Prefect.

Purpose: assess how much an operation can destroy, and decide, from the configured policy and
the decisions people have made, whether it may go ahead. The flows (``tasks/approval_gate.py``)
collect the decisions (a paused Prefect run, a callback, a terminal prompt); this package only
judges them, so every rule is testable as a pure function. ``signatures`` checks who signed
a decision; ``stored_policy`` keeps the governing policy in the repository and merges a local
config into it (stricter only).

Vocabulary:
- *operation*: a plain dict from a flow (``kind``: restore, delete, backup, ...) with the facts
  that matter (target, preview of files created/overwritten/deleted, snapshots, bytes).
- *risk*: low, medium, high, critical, with a one-line reason (:func:`assess`).
- *request*: an operation, its requester and its risk (:class:`ApprovalRequest`).
- *decision*: one person's approve/reject with a reason, signed or not (:class:`Decision`).
- *verdict*: approved, rejected or pending, with reasons and refused decisions (:func:`decide`).

Invariants:
- Backup is low; a restore that changes no existing file is medium; overwriting or deleting
  files, or deleting snapshots, is high; deleting the last snapshot or a full backup that
  others depend on is critical; an unknown kind is high.
- Nobody approves their own critical request, whatever the configuration says.
- Two approvals from the same person, or made with the same key, count as one.
- Under a policy that needs authentication, an unsigned or wrongly signed decision is refused.
- A refused decision never changes the verdict.
"""

from storage.guardian.describe import describe, preview_lines, summary_line
from storage.guardian.policy import (
    ApprovalRequest, Decision, Verdict, approvals_needed, decide, needs_authentication, refusal,
    requires_approval,
)
from storage.guardian.risk import Assessment, Risk, assess

__all__ = [
    "ApprovalRequest", "Assessment", "Decision", "Risk", "Verdict", "approvals_needed", "assess",
    "decide", "describe", "needs_authentication", "preview_lines", "refusal", "requires_approval",
    "summary_line",
]
