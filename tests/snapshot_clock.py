"""Backdate snapshots for retention tests: rewrite each manifest with an older time, as if the
backup had run then (the tree and data stay as they are). Ids change with the manifest; the
rewritten snapshots point at their rewritten parents and fulls."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from storage import Repository


def backdate(url: str, days_ago: dict[str, float], password: str | None = None) -> dict[str, str]:
    """Make snapshot ``sid`` ``days_ago[sid]`` days old (others keep their time); old id -> new id.
    Give a chain decreasing ages so its order stays the order it was made in."""
    repo = Repository.open(url, password=password)
    now = datetime.now(timezone.utc)
    new: dict[str, str] = {}
    for head in repo.snapshots.all():  # oldest first: a full before what depends on it
        snap = repo.snapshots.load(head.id)
        when = (now - timedelta(days=days_ago[head.id])).isoformat() if head.id in days_ago else snap.time
        moved = dataclasses.replace(snap, time=when, parent=new.get(snap.parent or "", snap.parent),
                                    base_full=new.get(snap.base_full or "", snap.base_full), id="")
        new[head.id] = repo.snapshots.save(moved)
        if new[head.id] != head.id:
            repo.snapshots.remove([head.id])
    return new
