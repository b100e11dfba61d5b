"""Which snapshots an archive run moves out of the repository, and why the others stay.

A snapshot is *due* when it is older than ``older_than_days`` and not among the ``keep``
newest snapshots of its source (host and path). Archiving drops the snapshot from the
repository afterwards, so the dependants rule of forget applies
(:func:`storage.repository.forget.dependants`): a due snapshot that a kept snapshot still needs
(a full whose incrementals stay, an incremental whose later incrementals stay) is skipped with
that reason, and whole chains go together. Each archive is self-contained either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from storage.errors import InvalidInput
from storage.repository.forget import dependants
from storage.snapshots import Snapshot


@dataclass
class ArchivePlan:
    """Plain data: what an archive run does (oldest first) and what it leaves (id -> reason)."""

    snapshots: list[str] = field(default_factory=list)   # to archive (or already archived), then forget
    archived: list[str] = field(default_factory=list)    # of those, already published by an earlier run
    skipped: dict[str, str] = field(default_factory=dict)
    older_than_days: float = 30
    keep: int = 10
    destination: str = ""
    storage_class: str | None = None
    compression_level: int = 6
    bytes: int = 0                                         # file content of the snapshots to archive

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_age(text: str | float | int) -> float:
    """Days from ``30d``, ``12h``, ``2w`` or a plain number of days; InvalidInput otherwise."""
    if isinstance(text, (int, float)):
        days = float(text)
    else:
        raw = str(text).strip().lower()
        unit = {"d": 1.0, "h": 1 / 24, "w": 7.0, "m": 1 / 1440}.get(raw[-1:], None) if raw else None
        try:
            days = float(raw[:-1]) * unit if unit is not None else float(raw)
        except ValueError:
            days = -1
    if not days >= 0:
        raise InvalidInput(f"--older-than {text!r} is not an age; write it as 30d, 12h or 2w.")
    return days


def _when(snap: Snapshot) -> datetime:
    t = datetime.fromisoformat(snap.time.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def select(snaps: list[Snapshot], older_than_days: float, keep: int, now: datetime | None = None) -> ArchivePlan:
    """The plan for ``snaps`` (headers suffice); ``archived`` is filled in by the caller."""
    if keep < 0:
        raise InvalidInput(f"--keep {keep} is negative; give how many recent snapshots to keep (0 or more).")
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=older_than_days)
    skipped: dict[str, str] = {}
    by_source: dict[tuple[str, str], list[Snapshot]] = {}
    for s in snaps:
        by_source.setdefault((s.host, s.source), []).append(s)
    due: dict[str, Snapshot] = {}
    for group in by_source.values():
        group.sort(key=lambda s: (s.time, s.id), reverse=True)
        for rank, s in enumerate(group):
            if rank < keep:
                skipped[s.id] = f"one of the {keep} newest snapshots of {s.source}"
            elif _when(s) > cutoff:
                skipped[s.id] = f"younger than {older_than_days:g} days"
            else:
                due[s.id] = s
    changed = True
    while changed:  # dropping one may strand another that it needs; repeat until stable
        changed = False
        for sid, s in list(due.items()):
            kept = [d for d in dependants(s, snaps) if d.id not in due]
            if kept:
                del due[sid]
                skipped[sid] = f"snapshot {kept[0].id[:8]}, which stays, depends on it"
                changed = True
    order = sorted(due.values(), key=lambda s: (s.time, s.id))
    return ArchivePlan(snapshots=[s.id for s in order], skipped=skipped, older_than_days=older_than_days,
                       keep=keep, bytes=sum(int(s.stats.get("bytes_total") or 0) for s in order))
