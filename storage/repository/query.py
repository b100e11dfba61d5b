"""Read-only questions about a repository: listing a snapshot, comparing two, statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from storage.layout import list_packs
from storage.snapshots import Snapshot, TreeEntry

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository

# The tree-entry fields `ls` shows, in this order.
LISTED_FIELDS = ("path", "type", "mode", "size", "mtime_ns", "target", "link", "sha256")


def list_entries(snap: Snapshot, prefix: str | None = None) -> list[dict[str, Any]]:
    out = []
    for e in snap.entries:
        if prefix and not (e["path"] == prefix.strip("/") or e["path"].startswith(prefix.strip("/") + "/")):
            continue
        out.append({k: v for k, v in e.items() if k in LISTED_FIELDS})
    return out


def _sig(e: TreeEntry) -> tuple:
    return (e["type"], e.get("sha256"), e.get("target"), e.get("link"), e.get("mode"))


@dataclass
class SnapshotDiff:
    """Paths added, removed and modified from snapshot ``from_id`` to ``to_id``, sorted."""

    from_id: str
    to_id: str
    added: list[str]
    removed: list[str]
    modified: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.from_id, "to": self.to_id, "added": self.added, "removed": self.removed,
                "modified": self.modified}


@dataclass
class RepositoryStats:
    snapshots: int
    chains: int
    packs: int
    chunks: int
    bytes_stored: int
    bytes_unique_raw: int
    bytes_logical: int
    dedup_ratio: float | None
    compression_ratio: float | None
    damaged_snapshots: dict[str, str] = field(default_factory=dict)  # id -> why it cannot be read
    encryption: str = "none"  # the scheme of docs/FORMAT.md "encryption", or "none"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.damaged_snapshots:
            del out["damaged_snapshots"]
        return out


def diff_snapshots(a: Snapshot, b: Snapshot) -> SnapshotDiff:
    ta = {e["path"]: e for e in a.entries}
    tb = {e["path"]: e for e in b.entries}
    added = sorted(p for p in tb if p not in ta)
    removed = sorted(p for p in ta if p not in tb)
    modified = sorted(p for p in ta if p in tb and _sig(ta[p]) != _sig(tb[p]))
    return SnapshotDiff(a.id, b.id, added, removed, modified)


def repository_stats(repo: Repository) -> RepositoryStats:
    snaps = repo.snapshots.all()
    index = repo.index
    stored = sum(list_packs(repo.backend).values())
    logical = sum(s.stats.get("bytes_total", 0) for s in snaps)
    raw = sum(loc.raw_length for _, loc in index.items())
    return RepositoryStats(
        snapshots=len(snaps),
        chains=len({s.chain for s in snaps}),
        packs=len(index.pack_run),
        chunks=len(index),
        bytes_stored=stored,
        bytes_unique_raw=raw,
        bytes_logical=logical,
        dedup_ratio=round(logical / raw, 3) if raw else None,
        compression_ratio=round(raw / stored, 3) if stored else None,
        damaged_snapshots=dict(sorted(repo.snapshots.damaged.items())),
        encryption=(repo.config.encryption or {}).get("scheme", "none"),
    )
