"""What the audit log knows about a repository's snapshots: those its backups made and no
forget or repair removed. A manifest deleted behind backupflow's back leaves no trace in the
repository itself; this record is how verify and ``restore latest`` notice it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from storage.audit.log import AuditLog

# Events whose details list snapshot ids that were removed on purpose.
_REMOVALS = {"delete.completed": "forgotten", "repair.completed": "removed"}
# A forget or repair that began and never ended (a killed process) may have removed snapshots
# recorded before it without saying which: those are left out rather than reported missing.
_BEGINS = {"delete.requested", "repair.started"}
_ENDS = {"delete.completed", "delete.failed", "delete.rejected", "repair.completed", "repair.failed",
         "repair.rejected"}


def _when(event: dict[str, Any]) -> str:
    return str(event.get("time"))[:19]


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def recorded_snapshots(log: AuditLog, repo_display: str, created: str | None = None) -> dict[str, str]:
    """snapshot id -> "backup of TARGET at TIME" for every snapshot of ``repo_display`` (the
    repository's display URL, as audit events carry it) that a backup recorded and no later
    forget or repair removed or may have removed.

    ``created`` is the repository's creation time (its config's ``created``): events before it
    belong to an earlier repository at the same address (deleted and made again), whose
    snapshots this one never had."""
    since = _moment(created) if created else None
    alive: dict[str, str] = {}
    open_runs: dict[str, list[str]] = {}   # flow run of an unfinished forget/repair -> ids before it
    for event in log.iter_events():
        details = event.get("details") or {}
        kind, run = event.get("type"), str(event.get("flow_run_id"))
        if since is not None and (_moment(event.get("time")) or since) < since:
            continue
        if details.get("repo") != repo_display:
            if kind in _ENDS:
                open_runs.pop(run, None)  # an approval step's rejection may not name the repository
            continue
        if kind == "backup.completed" and isinstance(details.get("snapshot"), str):
            alive[details["snapshot"]] = f"backup of {event.get('target')} at {_when(event)}"
        elif kind in _BEGINS:
            open_runs[run] = list(alive)
        if kind in _REMOVALS:
            for sid in details.get(_REMOVALS[kind]) or ():
                alive.pop(sid, None)
            for sid in (details.get("replaced") or {}).values():
                alive.setdefault(sid, f"repaired snapshot, recorded at {_when(event)}")
        if kind in _ENDS:
            open_runs.pop(run, None)
    for before in open_runs.values():
        for sid in before:
            alive.pop(sid, None)
    return alive
