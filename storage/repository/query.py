"""Read-only questions about a repository: listing a snapshot, comparing two, statistics."""

from __future__ import annotations

from typing import Any

from storage.layout import list_packs
from storage.snapshots import Snapshot

# The tree-entry fields `ls` shows, in this order.
LISTED_FIELDS = ("path", "type", "mode", "size", "mtime_ns", "target", "link", "sha256")


def list_entries(snap: Snapshot, prefix: str | None = None) -> list[dict[str, Any]]:
    out = []
    for e in snap.entries:
        if prefix and not (e["path"] == prefix.strip("/") or e["path"].startswith(prefix.strip("/") + "/")):
            continue
        out.append({k: e[k] for k in LISTED_FIELDS if k in e})
    return out


def _sig(e: dict) -> tuple:
    return (e["type"], e.get("sha256"), e.get("target"), e.get("link"), e.get("mode"))


def diff_snapshots(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    ta = {e["path"]: e for e in a.entries}
    tb = {e["path"]: e for e in b.entries}
    added = sorted(p for p in tb if p not in ta)
    removed = sorted(p for p in ta if p not in tb)
    modified = sorted(p for p in ta if p in tb and _sig(ta[p]) != _sig(tb[p]))
    return {"from": a.id, "to": b.id, "added": added, "removed": removed, "modified": modified}


def repository_stats(repo) -> dict[str, Any]:
    snaps = repo.snapshots.all()
    index = repo.index
    stored = sum(list_packs(repo.backend).values())
    logical = sum(s.stats.get("bytes_total", 0) for s in snaps)
    raw = sum(loc.raw_length for _, loc in index.items())
    out = {
        "snapshots": len(snaps),
        "chains": len({s.chain for s in snaps}),
        "packs": len(index.pack_run),
        "chunks": len(index),
        "bytes_stored": stored,
        "bytes_unique_raw": raw,
        "bytes_logical": logical,
        "dedup_ratio": round(logical / raw, 3) if raw else None,
        "compression_ratio": round(raw / stored, 3) if stored else None,
    }
    if repo.snapshots.damaged:
        out["damaged_snapshots"] = dict(sorted(repo.snapshots.damaged.items()))
    return out
