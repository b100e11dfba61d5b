"""Anchors: copies of each event's hash kept where the log's writer cannot rewrite them alone.

A hash chain proves the order of what it holds, but whoever writes the log can rewrite it and
recompute every hash, or delete it; a keyed MAC does not help, since the writer holds the key.
So each new event is also *anchored*: its id, time and hash are sent to places the writer does
not control, and :func:`cross_check` compares the local log with them.

Vocabulary:
- *log id*: identifies one audit log (its host and directory), so anchors of several logs can
  share a Prefect server or a repository.
- *anchor hooks*: callables run with every new event (:data:`ANCHOR_HOOKS`); the Prefect layer
  registers one that emits a Prefect event (the server keeps an independent, timestamped copy).
  The engine never imports Prefect, so this is a hook. The repository mirror
  (:mod:`storage.audit.mirror`) is the other anchor.

Invariants:
- An anchored hash missing from the local log means the log was rewritten, truncated or
  deleted; a log with no events while anchors exist is a failure, never "intact: 0 events".
- A failing anchor never loses the local event (it is logged as a warning).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from storage.audit.chain import Problem

# Called with every newly written event, after it is on disk.
ANCHOR_HOOKS: list[Callable[[dict[str, Any]], None]] = []
SHOWN = 10  # problems listed one by one before the rest are counted


def log_id(directory: str | os.PathLike) -> str:
    where = f"{socket.gethostname()}:{Path(directory).resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Anchor:
    """One event as an anchor recorded it."""

    id: str
    time: str
    hash: str
    where: str  # "the Prefect server", "the repository"


def cross_check(events: list[dict[str, Any]], anchors: list[Anchor]) -> list[Problem]:
    """Problems where the local log disagrees with its anchors (see the module invariants)."""
    if not anchors:
        return []
    where = " and ".join(sorted({a.where for a in anchors}))
    if not events:
        return [Problem("audit log", 0, f"the log holds no events but {len({a.hash for a in anchors})} were anchored "
                                        f"in {where}: it was deleted")]
    present = {str(e.get("hash")) for e in events}
    missing: dict[str, tuple[Anchor, set[str]]] = {}
    for anchor in sorted(anchors, key=lambda a: a.time):
        if anchor.hash not in present:
            missing.setdefault(anchor.hash, (anchor, set()))[1].add(anchor.where)
    problems = [Problem("audit log", 0, f"event {a.id} of {a.time}, anchored in {' and '.join(sorted(places))}, "
                                        "is not in the log as it was written "
                                        "(the log was rewritten, truncated or deleted)")
                for a, places in list(missing.values())[:SHOWN]]
    if len(missing) > SHOWN:
        problems.append(Problem("audit log", 0, f"and {len(missing) - SHOWN} more anchored events are missing"))
    return problems


def run_hooks(event: dict[str, Any], warn: Callable[[str], None]) -> None:
    for hook in list(ANCHOR_HOOKS):
        try:
            hook(event)
        except Exception as exc:  # the local log is the record; an anchor is a copy
            warn(f"audit event {event.get('id')} was not anchored: {exc}")
