"""Cleanup: a retention policy applied to a repository's snapshots, as a forget plan.

The policy arithmetic is :mod:`storage.repository.retention`; this module feeds it the
snapshots with what each one needs (the inverse of :func:`storage.repository.forget.dependants`,
so chains are respected by the same rule that ``forget`` enforces), and turns the snapshots to
remove into a :class:`ForgetPlan` (its bytes freed, last-snapshot and full-with-dependants
flags are what the Guardian assesses). Damaged manifests are never candidates: their time and
chain cannot be read, so cleanup leaves them to ``backupflow repair``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from storage.repository.forget import ForgetPlan, dependants, plan_forget
from storage.repository.retention import Candidate, RetentionPolicy, apply_policy
from storage.snapshots import Snapshot

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


@dataclass
class CleanupPlan:
    """Plain data: every snapshot's decision (with its type), and the forget that carries it out."""

    policy: dict[str, Any]
    decisions: list[dict[str, Any]]
    remove: list[str] = field(default_factory=list)   # forget order: dependants first
    forget: dict[str, Any] | None = None               # ForgetPlan.to_dict(); None when nothing goes
    bytes_freed: int = 0
    last_snapshot: bool = False
    damaged: dict[str, str] = field(default_factory=dict)  # unreadable manifests (id: why), left alone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot_candidates(snaps: list[Snapshot]) -> list[Candidate]:
    """Each snapshot as a candidate that needs every snapshot it is a dependant of."""
    needs: dict[str, list[str]] = {s.id: [] for s in snaps}
    chains: dict[str, list[Snapshot]] = {}
    for snap in snaps:
        chains.setdefault(snap.chain, []).append(snap)
    for snap in snaps:  # within its chain only: a year of hourly snapshots stays quick
        for dep in dependants(snap, chains[snap.chain]):
            needs[dep.id].append(snap.id)
    return [Candidate(s.id, s.time, s.host, s.source, tuple(s.tags), tuple(needs[s.id])) for s in snaps]


def plan_cleanup(repo: Repository, policy: RetentionPolicy, now: datetime | None = None) -> CleanupPlan:
    """Decide on every readable snapshot; raises InvalidInput for a policy a user must fix."""
    snaps = repo.snapshots.all()
    types = {s.id: s.type for s in snaps}
    decisions = apply_policy(snapshot_candidates(snaps), policy, now)
    rows = [{**d.to_dict(), "short_id": d.id[:8], "type": types[d.id]} for d in decisions]
    remove = [d.id for d in decisions if not d.keep]
    plan = CleanupPlan(policy.to_dict(), rows, damaged=dict(repo.snapshots.damaged))
    if remove:
        forget: ForgetPlan = plan_forget(repo, remove)
        plan.remove, plan.forget = forget.snapshots, forget.to_dict()
        plan.bytes_freed, plan.last_snapshot = forget.bytes_freed, forget.last_snapshot
    return plan
