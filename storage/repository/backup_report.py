"""What a backup reports: its stats, what it could not read, and the summary the flow returns.

TypedDicts rather than dataclasses: the summary is the flow's return value and the CLI's
``--json`` object, and Prefect and JSON take dicts as they are.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from storage.snapshots import Snapshot
from storage.snapshots.scan import Missing as Missing  # re-exported: the report names it


class BackupStats(TypedDict):
    files: int
    dirs: int
    symlinks: int
    bytes_total: int
    files_read: int
    bytes_read: int
    chunks_added: int
    bytes_new: int
    bytes_added: int
    packs_added: int
    packs_recovered: int
    dedup_ratio: float | None
    compression_ratio: float | None
    store_seconds: float
    warnings: NotRequired[int]    # added by the commit
    missing: NotRequired[int]     # added by the commit: how many asked-for items it lacks, when any


class BackupSummary(TypedDict):
    """The backup flow's result and the CLI's ``backup --json`` object (with the stats also
    spread at its top level there)."""

    snapshot_id: str
    short_id: str
    type: str
    parent: str | None
    base_full: str | None
    source: str
    time: str
    stats: BackupStats
    warnings: list[str]
    incomplete: list[Missing]
    duration_seconds: NotRequired[float]
    flow_run_id: NotRequired[str | None]


def summarize(snap: Snapshot, warnings: list[str], incomplete: list[Missing]) -> BackupSummary:
    stats: Any = snap.stats
    return BackupSummary(snapshot_id=snap.id, short_id=snap.id[:8], type=snap.type, parent=snap.parent,
                         base_full=snap.base_full, source=snap.source, time=snap.time, stats=stats,
                         warnings=warnings, incomplete=incomplete)


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None
