"""What a human sees before deciding: a short Markdown description of a request.

Shown as the pause description in the Prefect UI's resume form, by ``backupflow pending`` and
by the terminal prompt. Long file lists are cut to a few names plus a count, so a restore of
100,000 files still renders.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from storage.guardian.policy import ApprovalRequest
from storage.sizes import human_bytes

SHOW = 10
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")


def short(ref: Any) -> str:
    """A snapshot id as people quote it (8 hex digits); anything else as it is. A 64-digit id
    overflows the UI's approval dialog."""
    text = str(ref)
    return text[:8] if _SNAPSHOT_ID.fullmatch(text) else text


def _names(paths: list[Any]) -> str:
    shown = ", ".join(f"`{p}`" for p in paths[:SHOW])
    more = len(paths) - SHOW
    return shown + (f" and {more} more" if more > 0 else "")


def preview_lines(operation: dict[str, Any]) -> list[str]:
    kind = operation.get("kind")
    out: list[str] = []
    if kind == "restore":
        preview = operation.get("preview") or {}
        for key, verb in (("create", "created"), ("overwrite", "overwritten"), ("delete", "deleted")):
            paths = list(preview.get(key) or [])
            if key == "delete" and not paths:
                continue  # only an operation that deletes files lists them (a restore never does)
            names = f": {_names(paths)}" if paths else ""
            out.append(f"- {len(paths)} file{'s' if len(paths) != 1 else ''} {verb}{names}")
        same = len(preview.get("unchanged") or [])
        if same:
            out.append(f"- {same} existing file{'s' if same != 1 else ''} already as in the snapshot (not counted)")
        out.append(f"- {human_bytes(preview.get('bytes') or 0)} to write")
    elif kind in ("delete", "cleanup", "prune"):
        snaps = list(operation.get("snapshots") or [])
        out.append(f"- snapshots deleted ({len(snaps)}): {_names([short(s) for s in snaps]) if snaps else 'none'}")
        out.append(f"- space freed: {human_bytes(operation.get('bytes_freed') or 0)}")
        if operation.get("last_snapshot"):
            out.append("- **no snapshot would remain**")
        if operation.get("full_with_dependants"):
            out.append("- **a full backup that other snapshots depend on is deleted**")
    elif kind == "archive":
        snaps = list(operation.get("snapshots") or [])
        out.append(f"- snapshots archived to {operation.get('destination')} (verified) and dropped from the "
                   f"repository ({len(snaps)}): {_names([short(s) for s in snaps]) if snaps else 'none'}")
        out.append(f"- space freed in the repository: {human_bytes(operation.get('bytes_freed') or 0)}")
        if operation.get("last_snapshot"):
            out.append("- **a source would keep no snapshot in the repository (only its archives)**")
    return out


def summary_line(operation: dict[str, Any]) -> str:
    kind = operation.get("kind", "operation")
    repo = operation.get("repo")
    if kind == "restore":
        return f"restore snapshot {short(operation.get('snapshot'))} from {repo} into {operation.get('target')}"
    if kind in ("delete", "cleanup", "prune"):
        return f"delete {len(operation.get('snapshots') or [])} snapshot(s) from {repo}"
    if kind == "archive":
        snaps = operation.get("snapshots") or []
        return f"archive {len(snaps)} snapshot(s) of {repo} to {operation.get('destination')}"
    return f"{kind} on {repo or operation.get('target')}"


def describe(request: ApprovalRequest, needed: int = 1, approved_by: Sequence[str] = (),
             signed_only: bool = False, allowed: Sequence[str] = ()) -> str:
    """``signed_only``: the policy counts only signed decisions, so the form cannot approve;
    ``allowed``: the approvers the policy names (anyone else's answer is refused)."""
    lines = [
        f"## Approval needed: {summary_line(request.operation)}",
        "",
        f"**Risk:** {request.risk.level.value.upper()}: {request.risk.reason}",
        f"**Requested by:** {request.requester}",
    ]
    if needed > 1:
        lines.append(f"**Approvals needed:** {needed} from different people"
                     + (f" (so far: {', '.join(approved_by)})" if approved_by else ""))
    if allowed:
        lines.append(f"**May approve:** {', '.join(allowed)} (anyone else's answer is refused)")
    lines += ["", "**Preview:**", *preview_lines(request.operation), ""]
    if signed_only:
        lines.append("This policy counts only decisions signed with an approver's key, which this form cannot "
                     "carry: run `backupflow approve RUN_ID --key ~/.ssh/id_ed25519 --reason ...` (or `reject`).")
    else:
        lines.append("Set `approved` and your name in `approver`, give a `reason`, and submit; or run "
                     "`backupflow approve RUN_ID --reason ...` / `backupflow reject RUN_ID --reason ...`.")
    return "\n".join(lines)
