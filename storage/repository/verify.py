"""Verify: prove that every snapshot restores.

Structure (always): every snapshot manifest matches its hash; every chunk a snapshot
references is indexed, in a pack of its own chain; every indexed pack exists.
Data (``read_data``): every pack is read back, its hash checked, its header compared with the
index, and every blob decompressed and its chunk hash checked. Problems name the damaged
snapshots and files, so a user knows what is at risk.

Workers: :class:`_Verifier` holds what the steps share (the report, the packs present, the
chunks found damaged); :class:`_PackChecker` reads and checks one pack (``read_data``);
``_check_snapshot`` walks one snapshot's tree against what survived.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from storage.crypto import damaged_key_files
from storage.errors import BackupError, NotFound
from storage.layout import DATA, INDEX, OBJECT_ID, TREES, snapshot_name, tree_name
from storage.objects import BlobLocation, Index, load_pack_header, pack_name, parse_pack, read_blob
from storage.snapshots import Snapshot, TreeEntry
from storage.snapshots.manifest import SnapshotStore

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository

Progress = Callable[[int, int], None]  # (packs read, bytes read)


@dataclass
class VerifyReport:
    ok: bool = True
    snapshots: int = 0
    packs: int = 0
    chunks: int = 0
    bytes_read: int = 0
    read_data: bool = False
    problems: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    damaged_snapshots: list[str] = field(default_factory=list)
    damaged_files: dict[str, list[str]] = field(default_factory=dict)
    # Every object found damaged, missing or out of place, by name (``config``, ``index/<id>``,
    # ``snapshots/<id>``, ``trees/<id>``, ``data/<xx>/<id>``, or a stray name).
    damaged_objects: list[str] = field(default_factory=list)
    # How many times verify looked again because the repository changed while it ran (a
    # backup committed, a forget ran); the report is from the last look (Repository.verify).
    rechecks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PackCheck:
    """What reading one pack back found."""

    pack: str
    problems: list[str]
    bad_chunks: list[str]
    bytes_read: int


class _PackChecker:
    """Reads one pack, checks its hash and header, decodes and hashes every indexed blob."""

    def __init__(self, repo: Repository, index: Index):
        self.backend = repo.backend
        self.codec = repo.codec()
        self.blobs: dict[str, dict[str, BlobLocation]] = defaultdict(dict)
        for cid, loc in index.items():
            self.blobs[loc.pack][cid] = loc

    def _blob_ok(self, data: memoryview, cid: str, loc: BlobLocation) -> bool:
        try:
            read_blob(self.codec, data[loc.offset:loc.offset + loc.length], loc, cid)  # a view: no copy
        except BackupError:
            return False
        return True

    def check(self, pack: str) -> PackCheck:
        expected = self.blobs[pack]
        try:
            data = self.backend.load(pack_name(pack))
        except NotFound:
            return PackCheck(pack, [f"pack {pack[:12]} disappeared during verify"], list(expected), 0)
        problems: list[str] = []
        entries = None
        try:
            entries = parse_pack(data, pack, self.codec.sealer)
        except BackupError as exc:
            problems.append(f"pack {pack[:12]}: {exc.message}")
        view = memoryview(data)
        bad = [cid for cid, loc in expected.items() if not self._blob_ok(view, cid, loc)]
        if bad and not problems:
            problems.append(f"pack {pack[:12]}: {len(bad)} chunk(s) do not match their hash")
        elif entries is not None and expected and len(entries) != len(expected):
            problems.append(f"pack {pack[:12]}: header lists {len(entries)} chunks, index {len(expected)}")
        return PackCheck(pack, problems, bad, len(data))


class _Verifier:
    """The state one verify run shares between its steps."""

    def __init__(self, repo: Repository, read_data: bool):
        self.repo = repo
        self.index: Index = repo.index
        self.store = SnapshotStore(repo.backend, repo.sealer)
        self.report = VerifyReport(read_data=read_data)
        self.existing: dict[str, int] = {}
        self.bad_pairs: set[tuple[str, str]] = set()
        self.bad_packs: set[str] = set()
        self.unindexed: dict[str, str] | None = None  # chunk id -> unindexed pack holding it

    def problem(self, text: str, obj: str | None = None) -> None:
        self.report.problems.append(text)
        if obj is not None and obj not in self.report.damaged_objects:
            self.report.damaged_objects.append(obj)

    def load_snapshots(self) -> list[Snapshot]:
        snaps, unreadable = [], {}
        for sid in self.store.ids():
            try:
                snaps.append(self.store.header(sid))
            except BackupError as exc:
                unreadable[sid] = exc.message
        for sid, why in unreadable.items():
            users = [s.id[:8] for s in snaps if sid in (s.parent, s.base_full)]
            needs = f"; snapshot(s) {', '.join(users)} name it as parent or base" if users else ""
            self.problem(f"{why}{needs}", snapshot_name(sid))
            self.report.damaged_snapshots.append(sid)
        for name in self.store.strays:
            self.problem(f"{snapshot_name(name)} is not a snapshot (its name is not a snapshot id); remove it",
                         snapshot_name(name))
        self.report.snapshots = len(snaps)
        return snaps

    def check_keys(self) -> None:
        """Every key file of an encrypted repository is intact (one that is not would fail the
        day its password is the only one left)."""
        if self.repo.encrypted:
            for name, why in sorted(damaged_key_files(self.repo.backend).items()):
                self.problem(why, name)

    def check_versions(self) -> None:
        """The per-file version history (storage/versions/check.py)."""
        for text, name in self.repo.versions().check(self.index):
            self.problem(text, name)

    def check_index(self) -> None:
        for name, why in sorted(self.index.damaged.items()):
            self.problem(f"{why} Its packs were read from their own headers; `backupflow repair index` "
                         "rewrites the index.", name)
        self._check_names(INDEX, lambda parts: len(parts) == 2)
        self._check_names(TREES, lambda parts: len(parts) == 2)

    def _check_names(self, prefix: str, shape: Callable[[list[str]], bool]) -> None:
        for o in self.repo.backend.list(prefix):
            parts = o.name.split("/")
            if not (shape(parts) and OBJECT_ID.fullmatch(parts[-1])):
                self.problem(f"{o.name} is not a {prefix.rstrip('/')} object (its name is not a hash); remove it",
                             o.name)

    def check_packs_present(self) -> None:
        self.existing = {}
        for o in self.repo.backend.list(DATA):
            parts = o.name.split("/")
            pid = parts[-1]
            if len(parts) != 3 or not OBJECT_ID.fullmatch(pid) or parts[1] != pid[:2]:
                self.problem(f"{o.name} is not a pack (its name is not data/<xx>/<hash>); remove it", o.name)
                continue
            self.existing[pid] = o.size
        for p in self.index.pack_run:
            if p not in self.existing:
                self.problem(f"pack {p[:12]} is indexed but missing from the repository (`backupflow repair "
                             "snapshots` drops what is lost, `backupflow repair index` the index entries)",
                             pack_name(p))
                self.bad_packs.add(p)
            elif self.existing[p] < self.index.pack_size(p) + 12:
                self.problem(f"pack {p[:12]} is shorter than the blobs the index places in it (truncated)",
                             pack_name(p))
                self.bad_packs.add(p)
        self.report.packs = sum(1 for p in self.index.pack_run if p in self.existing)

    def read_packs(self, workers: int, progress: Progress | None) -> None:
        checker = _PackChecker(self.repo, self.index)
        todo = list(self.existing)  # unindexed packs too: their hash proves them whole
        self.report.packs = 0
        with ThreadPoolExecutor(workers, thread_name_prefix="bf-verify") as pool:
            for result in pool.map(checker.check, todo):
                self._record_pack(result)
                if progress:
                    progress(self.report.packs, self.report.bytes_read)

    def _record_pack(self, result: PackCheck) -> None:
        self.report.packs += 1
        self.report.bytes_read += result.bytes_read
        for text in result.problems:
            self.problem(text, pack_name(result.pack))
        if result.problems or result.bad_chunks:
            self.bad_packs.add(result.pack)
            if pack_name(result.pack) not in self.report.damaged_objects:
                self.report.damaged_objects.append(pack_name(result.pack))
        self.bad_pairs.update((result.pack, c) for c in result.bad_chunks)

    def check_snapshots(self, snaps: list[Snapshot]) -> None:
        chain_packs: dict[str, set[str]] = defaultdict(set)
        for s in snaps:
            chain_packs[s.chain].update(s.packs)
        for s in snaps:
            self._check_snapshot(s, chain_packs[s.chain])

    def check_expected(self, expected: dict[str, str] | None) -> None:
        """Snapshots another record (the audit log) says were made and not forgotten."""
        present = set(self.store.ids())
        for sid, what in sorted((expected or {}).items()):
            if sid not in present:
                self.problem(f"snapshot {sid[:8]} ({what}) is recorded in the audit log but missing from the "
                             "repository: its manifest was deleted", snapshot_name(sid))
                self.report.damaged_snapshots.append(sid)

    def _intact_locations(self, cid: str) -> list:
        return [loc for loc in self.index.locations(cid)
                if loc.pack in self.existing and (loc.pack, cid) not in self.bad_pairs]

    def _unindexed_pack(self, cid: str) -> str | None:
        """The stored pack holding ``cid`` that no index object names (a lost index object)."""
        if self.unindexed is None:
            self.unindexed = {}
            for pack in set(self.existing) - set(self.index.pack_run):
                try:
                    blobs = load_pack_header(self.repo.backend, pack, self.repo.sealer)
                except BackupError:
                    continue
                self.unindexed.update((b[0], pack) for b in blobs)
        return self.unindexed.get(cid)

    def _walk_tree(self, s: Snapshot, tree: list[TreeEntry], own: set[str]) -> tuple[list[str], int, set[str]]:
        damaged: list[str] = []
        outside = 0
        lost_index: set[str] = set()
        for e in tree:
            chunks = e.get("chunks", ())
            if not isinstance(chunks, (list, tuple)) or not all(isinstance(c, str) for c in chunks):
                damaged.append(e["path"])  # a hostile or damaged entry: nothing to look up
                continue
            for cid in chunks:
                locs = self._intact_locations(cid)
                if not locs:
                    pack = self._unindexed_pack(cid)
                    if pack is None:
                        damaged.append(e["path"])
                        break
                    lost_index.add(pack)
                elif not any(loc.pack in own for loc in locs):
                    outside += 1
        return damaged, outside, lost_index

    def _check_snapshot(self, s: Snapshot, own: set[str]) -> None:
        try:
            tree = self.store.load_tree(s)  # one tree at a time: memory stays flat
        except BackupError as exc:
            self.problem(f"{exc.message} Every file of snapshot {s.id[:8]} is lost.",
                         tree_name(s.tree_id))
            self.report.damaged_snapshots.append(s.id)
            return
        damaged, outside, lost_index = self._walk_tree(s, tree, own)
        if outside:
            self.problem(f"snapshot {s.id[:8]}: {outside} chunk reference(s) lie outside its chain")
        for pack in sorted(lost_index):
            self.problem(f"pack {pack[:12]} holds data snapshot {s.id[:8]} needs, but no index object names it "
                         "(an index object was lost); `backupflow repair index` re-indexes it", INDEX)
        if damaged:
            self.report.damaged_snapshots.append(s.id)
            self.report.damaged_files[s.id] = damaged
            shown = ", ".join(damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
            self.problem(f"snapshot {s.id[:8]} cannot restore {len(damaged)} file(s): {shown}")

    def finish(self) -> VerifyReport:
        self.report.chunks = len(self.index)
        self.report.damaged_packs = sorted(self.bad_packs)
        self.report.damaged_snapshots = list(dict.fromkeys(self.report.damaged_snapshots))
        self.report.ok = not self.report.problems
        return self.report


def verify_repository(repo: Repository, read_data: bool = False, progress: Progress | None = None,
                      workers: int | None = None, expected: dict[str, str] | None = None) -> VerifyReport:
    """Check ``repo``; ``expected`` maps snapshot ids another record says exist (the audit log)
    to a description, so a deleted manifest is found too."""
    # Each worker holds a whole pack (its hash covers all of it): two keep both cores busy on
    # local disk; more hide the latency of a cloud store.
    workers = workers or (2 if repo.is_local else 4)
    v = _Verifier(repo, read_data)
    snaps = v.load_snapshots()
    v.check_expected(expected)
    v.check_keys()
    v.check_index()
    v.check_packs_present()
    if read_data:
        v.read_packs(workers, progress)
    v.check_snapshots(snaps)
    v.check_versions()
    return v.finish()
