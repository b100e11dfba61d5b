"""Prune: delete the packs no snapshot needs, and the index entries that name them.

What stays (docs/FORMAT.md, "write order and concurrency": cleanup never removes data a
snapshot still references or a backup running at the same time may commit):

- every pack a remaining snapshot claims (its manifest's ``packs``), and every pack holding a
  chunk that a remaining snapshot references and no claimed pack holds (a safety net for
  snapshots whose chain lost a manifest, e.g. one committed while its full was forgotten);
- every unclaimed pack whose run holds a live lock (that run may still commit or adopt it);
- every pack the version history needs (storage/versions/: its own packs and pinned ones).

Concurrency (locks.py): prune writes its own exclusive lease first, then refuses with
:class:`Locked` if any other live lease exists (a backup, or a reader: verify, restore,
export, ls); backups and readers write theirs, then stand down if they see a live prune. So
nothing backs up or reads while packs are deleted. A run whose lease is no longer refreshed
counts as dead, on any host. Stale leases and the half-written files of killed runs are
removed as well (leftovers.py).

Write order keeps every state readable and never lets the index name a deleted pack (a
backup would then dedup against chunks that are gone): first the rewritten index objects
(surviving entries of each index object that named a doomed pack), then the old index
objects are deleted, then the packs. A crash in between leaves unindexed packs, which the
next backup re-indexes and the next prune removes. Every deletion tolerates NotFound, so a
rerun after a crash is safe.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from storage.backend import Backend
from storage.errors import IntegrityError, Locked, NotFound
from storage.layout import TREES, list_ids, list_packs, tree_name
from storage.crypto import Sealer
from storage.objects import Codec, Index, IndexWriter, pack_name
from storage.objects.index import INDEX_KIND
from storage.repository import leftovers, locks
from storage.snapshots import Snapshot, SnapshotStore
from storage.snapshots.manifest import damaged_names
from storage.versions import version_packs

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


@dataclass
class PruneReport:
    packs_deleted: int = 0
    bytes_freed: int = 0
    packs_kept_live: int = 0       # unclaimed packs kept because their run is alive
    index_rewritten: int = 0       # index objects replaced by one without the deleted packs
    index_deleted: int = 0         # index objects that named only deleted packs
    trees_deleted: int = 0         # tree objects no remaining snapshot names
    temporaries_deleted: int = 0   # half-written objects of killed runs (local disk)
    leases_removed: int = 0        # stale leases of killed runs
    dry_run: bool = False
    packs: list[str] = field(default_factory=list)
    trees: list[str] = field(default_factory=list, repr=False)
    temporaries: list[str] = field(default_factory=list, repr=False)
    index_changes: list[tuple[str, dict | None]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("index_changes")
        out.pop("trees")
        out.pop("temporaries")
        return out


def stored_pack_sizes(backend: Backend) -> dict[str, int]:
    return list_packs(backend)


def needed_packs(index: Index, snaps: list[Snapshot], store: SnapshotStore,
                 unreadable: list[str] | None = None) -> set[str]:
    """Packs that must stay for ``snaps`` to restore (see the module docstring).
    Trees are read one at a time, so memory does not grow with the number of snapshots.

    A tree that cannot be read raises IntegrityError, unless ``unreadable`` is given (an
    estimate, e.g. for forget's preview): then its snapshot id is appended and it is skipped."""
    claimed = {p for s in snaps for p in s.packs}
    seen: set[str] = set()
    extra: set[str] = set()
    for s in snaps:
        try:
            tree = store.load_tree(s)
        except IntegrityError as exc:
            if unreadable is None:
                raise IntegrityError(f"Cannot prune: {exc.message} Without it prune cannot tell which data "
                                     "that snapshot still needs, so nothing was deleted; run `backupflow repair "
                                     "snapshots` (or forget that snapshot) first.") from exc
            unreadable.append(s.id)
            continue
        for e in tree:
            for cid in e.get("chunks", ()):
                if cid in seen:
                    continue
                seen.add(cid)
                locs = index.locations(cid)
                if not any(loc.pack in claimed for loc in locs):
                    extra.update(loc.pack for loc in locs)
    return claimed | extra


def _load_index_docs(backend: Backend, names: list[str], sealer: Sealer) -> list[dict]:
    def fetch(name: str) -> dict:
        return json.loads(Codec.unpack_doc(backend.load(name), sealer, INDEX_KIND))

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(fetch, names))


def _refuse_if_damaged(repo: Repository, index: Index) -> None:
    """Prune must never delete data that an unreadable manifest or index object may name."""
    damaged = repo.snapshots.damaged
    if damaged:
        raise IntegrityError(
            f"Cannot prune: snapshot(s) {damaged_names(damaged)} cannot be read, so prune cannot tell which "
            "data they need and deleted nothing; forget them (`backupflow forget ID`) or run "
            "`backupflow repair snapshots` first.")
    bad_index = index.damaged
    if bad_index:
        names = ", ".join(sorted(bad_index)[:5])
        raise IntegrityError(f"Cannot prune: index object(s) {names} are damaged and prune rewrites the index, "
                             "so nothing was deleted; run `backupflow repair index` first.")


def find_garbage(repo: Repository, own_run: str | None = None) -> PruneReport:
    """What a prune would delete now, deleting nothing."""
    repo.refresh()
    index = repo.index
    sizes = stored_pack_sizes(repo.backend)
    snaps = repo.snapshots.all()
    _refuse_if_damaged(repo, index)
    keep = needed_packs(index, snaps, repo.snapshots) | version_packs(repo.backend, index)
    live = locks.live_runs(repo.backend) - {own_run}
    report = PruneReport()
    # A backup writes its tree just before its manifest, under its lock; prune runs only when
    # no backup is alive, so an unnamed tree is garbage.
    named = {s.tree_id for s in snaps}
    report.trees = sorted(tree_name(t) for t in list_ids(repo.backend, TREES) if t not in named)
    report.trees_deleted = len(report.trees)
    doomed: set[str] = set()
    for pack, size in sizes.items():
        if pack in keep:
            continue
        run = index.pack_run.get(pack)
        # An unindexed pack's run is unknown without reading its header; while any run is
        # alive it may be that run's, so it stays.
        if (run is None and live) or run in live:
            report.packs_kept_live += 1
            continue
        doomed.add(pack)
        report.bytes_freed += size
    report.packs = sorted(doomed)
    report.packs_deleted = len(doomed)
    # Half-written objects (a killed backup's open pack) and stale leases (leftovers.py).
    stale, temps = leftovers.find(repo.backend, own_run)
    report.leases_removed = len(stale)
    report.temporaries = [t.name for t in temps]
    report.temporaries_deleted = len(temps)
    report.bytes_freed += sum(t.size for t in temps)
    # Index entries for packs that are gone already (and not needed) are dropped as well.
    dropped = doomed | {p for p, run in index.pack_run.items() if p not in sizes and p not in keep and run not in live}
    names = list(index.index_names)
    for name, doc in zip(names, _load_index_docs(repo.backend, names, repo.sealer), strict=True):
        hit = dropped.intersection(doc["packs"])
        if not hit:
            continue
        rest = {p: b for p, b in doc["packs"].items() if p not in hit}
        report.index_changes.append((name, {**doc, "packs": rest} if rest else None))
    report.index_rewritten = sum(1 for _, d in report.index_changes if d is not None)
    report.index_deleted = len(report.index_changes) - report.index_rewritten
    return report


def _sweep(repo: Repository, report: PruneReport, run: str) -> None:
    for _, doc in report.index_changes:
        if doc is not None:
            writer = IndexWriter(repo.backend, doc["run"], doc["chain"], batch=len(doc["packs"]) + 1,
                                 sealer=repo.sealer)
            for pack, blobs in doc["packs"].items():
                writer.add(pack, blobs)
            writer.flush()
    for name, _ in report.index_changes:
        try:
            repo.backend.remove(name)
        except NotFound:
            pass
    for name in report.trees:
        try:
            repo.backend.remove(name)
        except NotFound:
            pass
    for pack in report.packs:
        try:
            repo.backend.remove(pack_name(pack))
        except NotFound:
            pass  # a second prune (or a retry) got there first: the pack is gone either way
    done = leftovers.sweep(repo.backend, own_run=run)
    report.leases_removed = done.leases_removed
    report.temporaries_deleted = done.temporaries_deleted
    repo.refresh()


def _refuse_if_others(backend: Backend, run: str) -> None:
    others = locks.live_locks(backend, skip=run)
    if not others:
        return
    kinds = {d.get("kind") for d in others}
    if kinds == {"prune"}:
        what = "another prune is running"
    else:
        what = f"{locks.describe([d for d in others if d.get('kind') != 'prune'])} is running"
    raise Locked(f"Cannot prune: {what} on this repository ({len(others)} live lease(s) under locks/); "
                 "try again when it finishes.")


def prune(repo: Repository, dry_run: bool = False) -> PruneReport:
    """Delete unneeded packs under an exclusive lease; a dry run takes none and deletes nothing."""
    if dry_run:
        report = find_garbage(repo)
        report.dry_run = True
        return report
    run = uuid.uuid4().hex
    locks.acquire(repo.backend, run, "prune", what="prune")
    try:
        _refuse_if_others(repo.backend, run)
        report = find_garbage(repo, own_run=run)
        _sweep(repo, report, run)
        return report
    finally:
        locks.release(repo.backend, run)
