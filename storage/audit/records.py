"""What the audit log knows about a repository's snapshots: those its backups made and no
forget or repair removed. A manifest deleted behind backupflow's back leaves no trace in the
repository itself; this record is how verify and ``restore latest`` notice it."""

from __future__ import annotations

from storage.audit.log import AuditLog

# Events whose details list snapshot ids that were removed on purpose.
_REMOVALS = {"delete.completed": "forgotten", "repair.completed": "removed"}


def recorded_snapshots(log: AuditLog, repo_display: str) -> dict[str, str]:
    """snapshot id -> "backup of TARGET at TIME" for every snapshot of ``repo_display`` (the
    repository's display URL, as audit events carry it) that a backup recorded and no later
    forget or repair removed."""
    alive: dict[str, str] = {}
    for event in log.iter_events():
        details = event.get("details") or {}
        if details.get("repo") != repo_display:
            continue
        kind = event.get("type")
        if kind == "backup.completed" and isinstance(details.get("snapshot"), str):
            alive[details["snapshot"]] = f"backup of {event.get('target')} at {str(event.get('time'))[:19]}"
        elif kind in _REMOVALS:
            for sid in details.get(_REMOVALS[kind]) or ():
                alive.pop(sid, None)
            for sid in (details.get("replaced") or {}).values() if kind == "repair.completed" else ():
                alive.setdefault(sid, f"repaired snapshot, recorded at {str(event.get('time'))[:19]}")
    return alive
