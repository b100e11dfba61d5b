"""Risk assessment: how much an operation can destroy, and why.

The operation is a plain dict (what the flows pass): ``kind`` plus kind-specific facts. Unknown
kinds are assessed high, so a new destructive operation is never waved through by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Risk(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Assessment:
    level: Risk
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level.value, "reason": self.reason}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def assess(operation: dict[str, Any]) -> Assessment:
    kind = str(operation.get("kind", "")).lower()
    if kind == "backup":
        return Assessment(Risk.LOW, "a backup only adds data to the repository")
    if kind in ("verify", "list", "stats"):
        return Assessment(Risk.LOW, f"{kind} only reads the repository")
    if kind == "restore":
        return _assess_restore(operation)
    if kind in ("delete", "cleanup", "prune"):
        return _assess_delete(operation)
    if kind == "policy":
        return Assessment(Risk.CRITICAL,
                          "changing the approval policy changes who may approve every destructive operation")
    if kind == "archive":
        if operation.get("last_snapshot"):
            return Assessment(Risk.HIGH, "archiving removes the last snapshot of a source from the repository "
                                         "(its archive stays)")
        return Assessment(Risk.MEDIUM, "archiving moves snapshots to the archive tier; the hot copies are dropped")
    return Assessment(Risk.HIGH, f"unknown operation kind {kind!r}: treated as destructive")


def _assess_restore(operation: dict[str, Any]) -> Assessment:
    preview = operation.get("preview") or {}
    target = operation.get("target", "the target")
    overwrite = list(preview.get("overwrite") or [])
    delete = list(preview.get("delete") or [])
    if overwrite or delete:
        parts = []
        if overwrite:
            parts.append(f"overwrites {_count(len(overwrite), 'existing file')}")
        if delete:
            parts.append(f"deletes {_count(len(delete), 'file')}")
        return Assessment(Risk.HIGH, f"the restore {' and '.join(parts)} in {target}")
    create = len(preview.get("create") or [])
    return Assessment(Risk.MEDIUM,
                      f"the restore creates {_count(create, 'file')} in {target} and changes no existing file")


def _assess_delete(operation: dict[str, Any]) -> Assessment:
    snapshots = list(operation.get("snapshots") or [])
    what = _count(len(snapshots), "snapshot")
    if operation.get("last_snapshot"):
        return Assessment(Risk.CRITICAL, f"deleting {what} removes the last snapshot: no backup would remain")
    if operation.get("full_with_dependants"):
        return Assessment(Risk.CRITICAL, f"deleting {what} removes a full backup that other snapshots depend on")
    return Assessment(Risk.HIGH, f"deleting {what} loses the data only they hold")
