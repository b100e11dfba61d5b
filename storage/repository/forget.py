"""Forget: delete snapshot manifests, never a snapshot that a remaining one still needs.

Vocabulary: a snapshot's *dependants* are the snapshots that may read data it stored. A full's
dependants are every other snapshot of its chain; an incremental's or differential's are the
later incrementals of its chain (an incremental dedups against every pack its chain had when
it ran; a differential only against its base full). Forgetting a snapshot without its
dependants would leave them pointing at data that prune then deletes, so it is refused; the
user names them too, or asks for ``chain`` (each named snapshot plus all its dependants).

Forgetting only deletes manifests; the data goes when :mod:`storage.repository.prune` runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from storage.errors import InvalidInput
from storage.repository.prune import needed_packs, stored_pack_sizes
from storage.repository.workflows import remove_workflows
from storage.snapshots import Snapshot

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


@dataclass
class ForgetPlan:
    """Plain data: what a forget would delete and how dangerous it is (for the Guardian)."""

    snapshots: list[str]                 # full ids, dependants before the snapshots they need
    last_snapshot: bool = False          # some source would have no snapshot left
    full_with_dependants: bool = False   # a full is forgotten together with snapshots that need it
    bytes_freed: int = 0                 # bytes of packs only the forgotten snapshots claim
    packs_freed: int = 0
    sources_emptied: list[str] = field(default_factory=list)
    remaining: int = 0
    prune: bool = False
    damaged: list[str] = field(default_factory=list)  # named snapshots whose manifest cannot be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dependants(snap: Snapshot, snaps: list[Snapshot]) -> list[Snapshot]:
    """The snapshots that may read data ``snap`` stored (see the module docstring)."""
    same_chain = [s for s in snaps if s.chain == snap.chain and s.id != snap.id]
    if snap.type == "full":
        return same_chain
    # Commit time is a safe stand-in for "ran after": a later commit that planned earlier only
    # makes the rule stricter, never looser.
    return [s for s in same_chain if s.type == "incremental" and (s.time, s.id) > (snap.time, snap.id)]


def _names(snaps: list[Snapshot]) -> str:
    ids = [s.id[:8] for s in snaps]
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _check_dependants(chosen: dict[str, Snapshot], snaps: list[Snapshot]) -> None:
    for snap in sorted(chosen.values(), key=lambda s: (s.type != "full", s.time, s.id)):
        left = [d for d in dependants(snap, snaps) if d.id not in chosen]
        if not left:
            continue
        if snap.type == "full":
            raise InvalidInput(
                f"Snapshot {snap.id[:8]} is a full backup that {len(left)} other snapshot(s) still depend on "
                f"({_names(left)}); name them too, or add --chain to forget its whole chain.")
        raise InvalidInput(
            f"Snapshot {snap.id[:8]} holds data that the later snapshot(s) {_names(left)} of its chain still "
            f"need; name them too, or add --chain to forget them with it.")


def plan_forget(repo: Repository, refs: list[str], prune: bool = False, chain: bool = False) -> ForgetPlan:
    """Resolve ``refs`` and check the dependants rule; raises InvalidInput or NotFound.

    ``prune`` does not change what is forgotten, only whether the caller prunes afterwards;
    ``bytes_freed`` is what a prune right after the forget would free either way."""
    refs = [r for r in (refs or []) if str(r).strip()]
    if not refs:
        raise InvalidInput("Name at least one snapshot to forget (an id or a unique id prefix).")
    snaps = repo.snapshots.all()
    # A full id needs no listing of its own (a cleanup names thousands); a prefix does.
    known = {s.id for s in snaps} | set(repo.snapshots.damaged)
    chosen: dict[str, Snapshot] = {}
    damaged: list[str] = []
    for ref in refs:
        sid = ref if ref in known else repo.snapshots.resolve_id(ref)
        if sid in repo.snapshots.damaged:
            # Its chain and dependants cannot be read; forgetting it removes only the manifest,
            # and prune keeps whatever a remaining snapshot still references.
            damaged.append(sid)
            continue
        snap = repo.snapshots.header(sid)  # the manifest says all this needs; its tree is not read
        chosen[snap.id] = snap
    if chain:
        for snap in list(chosen.values()):
            for d in dependants(snap, snaps):
                chosen.setdefault(d.id, d)
    _check_dependants(chosen, snaps)

    remaining = [s for s in snaps if s.id not in chosen]
    left_sources = {(s.host, s.source) for s in remaining}
    emptied = sorted({s.source for s in chosen.values() if (s.host, s.source) not in left_sources})
    keep = needed_packs(repo.index, remaining, repo.snapshots, unreadable=[])
    sizes = stored_pack_sizes(repo.backend)
    freed = {p for s in chosen.values() for p in s.packs if p not in keep and p in sizes}
    # Dependants first, newest first: a crash part-way never leaves a snapshot whose full is gone.
    order = sorted(chosen.values(), key=lambda s: (s.type != "full", s.time, s.id), reverse=True)
    return ForgetPlan(
        snapshots=sorted(set(damaged)) + [s.id for s in order], damaged=sorted(set(damaged)),
        last_snapshot=bool(emptied) or not remaining,
        full_with_dependants=any(s.type == "full" and dependants(s, snaps) for s in chosen.values()),
        bytes_freed=sum(sizes[p] for p in freed), packs_freed=len(freed),
        sources_emptied=emptied, remaining=len(remaining), prune=prune,
    )


@dataclass
class ForgetResult:
    forgotten: list[str]     # every planned snapshot, whoever removed its manifest
    already_gone: list[str]  # of those, the ones another run had removed before this one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def forget(repo: Repository, plan: ForgetPlan) -> ForgetResult:
    """Delete the planned manifests, after checking the plan still holds.

    An approval can take hours; if a backup added a dependant or another forget removed
    snapshots meanwhile, the plan no longer says what would be lost, so it is refused rather
    than carried out. Deleting is idempotent: a manifest already gone counts as forgotten."""
    repo.refresh()
    present = set(repo.snapshots.ids())
    still = [sid for sid in plan.snapshots if sid in present]
    if still:
        now = plan_forget(repo, still)
        if ((now.last_snapshot and not plan.last_snapshot)
                or (now.full_with_dependants and not plan.full_with_dependants)):
            raise InvalidInput("The repository changed while the forget waited for approval (other snapshots were "
                               "deleted); run the forget again so that it is assessed as it is now.")
    gone = repo.snapshots.remove(list(plan.snapshots))
    remove_workflows(repo.backend, gone)
    repo.refresh()
    return ForgetResult(gone, [sid for sid in plan.snapshots if sid not in present])
