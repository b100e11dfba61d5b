"""Repair: rebuild what damage took, from what is still whole (restic's ``repair index`` and
``repair snapshots``).

- ``repair_index`` re-indexes every stored pack that no readable index object names, from the
  pack's own header, then removes the damaged index objects. It only adds index objects and
  removes ones that cannot be read, so it asks nobody; it refuses while a prune runs.
- ``plan_repair_snapshots`` / ``repair_snapshots``: every snapshot that cannot restore some
  files gets a new manifest without them (same chain, type, time and packs, tagged
  ``repaired``); snapshots whose manifest or tree cannot be read are removed. Both delete
  manifests, so the flow asks the Guardian first (like forget). Data is never deleted here:
  prune does that later, and it keeps whatever a remaining snapshot references.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from storage.errors import BackupError, NotFound
from storage.layout import OBJECT_ID, index_name, list_packs
from storage.objects import Index
from storage.objects.index import encode_index, read_index_object
from storage.objects.packs import load_pack_header_doc
from storage.repository import locks
from storage.snapshots import TreeEntry

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


@dataclass
class IndexRepair:
    packs_indexed: int = 0                                       # packs re-read from their headers
    index_written: list[str] = field(default_factory=list)       # new index objects
    index_removed: list[str] = field(default_factory=list)       # damaged or rewritten index objects deleted
    missing_packs: list[str] = field(default_factory=list)       # indexed packs that are gone (entries dropped)
    packs_unreadable: list[str] = field(default_factory=list)    # packs whose header is damaged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lock_for_repair(backend) -> str:
    """A shared lease (like a backup's: repair only adds objects and removes unreadable ones),
    taken before looking, so a prune never runs while a repair writes."""
    run = uuid.uuid4().hex
    lease = locks.acquire(backend, run, "backup", what="repair")
    locks.wait_for_no_exclusive(backend, lease, "repair")
    return run


def _pack_chains(repo: Repository) -> dict[str, str]:
    return {p: s.chain for s in repo.snapshots.all() for p in s.packs}


def _write_index(repo: Repository, run: str, chain: str, packs: dict[str, list], damaged: dict[str, str]) -> str:
    """One index object; a damaged object under the same name (the same entries written again)
    is replaced."""
    doc = {"v": 1, "run": run, "chain": chain, "packs": packs}
    data = encode_index(doc, repo.sealer)
    name = index_name(hashlib.sha256(data).hexdigest())
    backend = repo.backend
    if name in damaged:
        backend.remove(name)
    backend.save(name, data)
    return name


def _unindexed_headers(repo: Repository, index: Index, out: IndexRepair) -> dict[str, dict[str, list]]:
    """run -> {pack: blobs} for every stored pack no readable index object names."""
    covered = set(index.pack_run) - set(index.recovered)
    by_run: dict[str, dict[str, list]] = {}
    for pack in list_packs(repo.backend):
        if pack in covered or not OBJECT_ID.fullmatch(pack):
            continue
        try:
            header = load_pack_header_doc(repo.backend, pack, repo.sealer)
        except BackupError:
            out.packs_unreadable.append(pack)
            continue
        by_run.setdefault(str(header.get("run") or "unknown"), {})[pack] = header["blobs"]
        out.packs_indexed += 1
    return by_run


def _naming_missing(repo: Repository, index: Index, stored: set[str], out: IndexRepair) -> list[tuple[str, dict]]:
    """(name, doc) of each readable index object that names a pack no longer stored."""
    missing = set(index.pack_run) - stored
    out.missing_packs = sorted(missing)
    if not missing:
        return []
    found = []
    for name in index.index_names:
        doc = read_index_object(repo.backend, name, repo.sealer)
        if missing.intersection(doc["packs"]):
            found.append((name, doc))
    return found


def repair_index(repo: Repository) -> IndexRepair:
    """Index every pack the readable index objects miss; then delete the damaged ones."""
    run = _lock_for_repair(repo.backend)
    try:
        index = Index.load(repo.backend, sealer=repo.sealer)
        out = IndexRepair()
        chains = _pack_chains(repo)
        for pack_run, packs in sorted(_unindexed_headers(repo, index, out).items()):
            chain = next((chains[p] for p in packs if p in chains), pack_run)
            for start in range(0, len(packs), 16):
                part = dict(sorted(packs.items())[start:start + 16])
                out.index_written.append(_write_index(repo, pack_run, chain, part, index.damaged))
        stored = set(list_packs(repo.backend))
        doomed = dict(index.damaged)
        for name, doc in _naming_missing(repo, index, stored, out):
            rest = {p: b for p, b in doc["packs"].items() if p in stored}
            if rest:
                out.index_written.append(_write_index(repo, doc["run"], doc.get("chain") or doc["run"], rest,
                                                      index.damaged))
            doomed[name] = "names missing packs"
        for name in sorted(doomed):
            if name not in out.index_written:
                try:
                    repo.backend.remove(name)
                except NotFound:
                    pass
            out.index_removed.append(name)
        repo.refresh()
        return out
    finally:
        locks.release(repo.backend, run)


@dataclass
class SnapshotRepairPlan:
    """Plain data: what ``repair_snapshots`` would do (and what the Guardian is asked)."""

    rewrite: dict[str, list[str]] = field(default_factory=dict)  # snapshot -> files it cannot restore
    remove: dict[str, str] = field(default_factory=dict)         # snapshot -> why it cannot be rewritten
    remaining: int = 0                                           # readable snapshots left untouched
    read_data: bool = False

    @property
    def snapshots(self) -> list[str]:
        """Every manifest the repair deletes (rewritten ones are replaced by a new manifest)."""
        return sorted(set(self.rewrite) | set(self.remove))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "snapshots": self.snapshots}


def plan_repair_snapshots(repo: Repository, read_data: bool = False) -> SnapshotRepairPlan:
    """Find the snapshots that cannot restore everything (verify, with ``read_data`` reading
    every pack) and decide for each: rewrite without the lost files, or remove."""
    report = repo.verify(read_data)  # under a read lease, re-checked if the repository changed meanwhile
    present = set(repo.snapshots.ids())
    plan = SnapshotRepairPlan(read_data=read_data)
    for sid in report.damaged_snapshots:
        if sid not in present:
            continue  # missing already (named by the audit log): nothing to repair
        if sid in report.damaged_files:
            plan.rewrite[sid] = list(report.damaged_files[sid])
        else:
            why = next((p for p in report.problems if sid[:8] in p), "it cannot be read")
            plan.remove[sid] = why
    plan.remaining = len({s.id for s in repo.snapshots.all()} - set(plan.remove))
    return plan


def _without(tree: list[TreeEntry], lost: set[str]) -> list[TreeEntry]:
    """The tree minus the lost files and the hard links that point at them."""
    return [e for e in tree if e["path"] not in lost and not (e.get("type") == "hardlink" and e.get("link") in lost)]


def repair_snapshots(repo: Repository, plan: SnapshotRepairPlan) -> dict[str, Any]:
    """Carry out ``plan`` under a lease: write each replacement manifest first, then delete the
    old one."""
    run = _lock_for_repair(repo.backend)
    try:
        return _carry_out(repo, plan)
    finally:
        locks.release(repo.backend, run)


def _carry_out(repo: Repository, plan: SnapshotRepairPlan) -> dict[str, Any]:
    repo.refresh()
    replaced: dict[str, str] = {}
    for sid, lost in sorted(plan.rewrite.items()):
        try:
            old = repo.snapshots.load(sid)
        except NotFound:
            continue  # forgotten while the repair waited for approval
        tree = _without(old.tree or [], set(lost))
        files = sum(1 for e in tree if e.get("type") == "file")
        stats = {**old.stats, "files": files, "repaired_lost_files": len(lost)}
        new = replace(old, tree=tree, id="", stats=stats, tags=sorted(set(old.tags) | {"repaired"}),
                      description=(old.description + f" (repaired: {len(lost)} file(s) lost)").strip())
        replaced[sid] = repo.snapshots.save(new)
    removed = repo.snapshots.remove(sorted(set(plan.rewrite) | set(plan.remove)))
    repo.refresh()
    return {"replaced": replaced, "removed": removed,
            "lost_files": {new: plan.rewrite[old] for old, new in replaced.items()}}
