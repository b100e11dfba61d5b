"""Verify: prove that every snapshot restores.

Structure (always): every snapshot manifest matches its hash; every chunk a snapshot
references is indexed, in a pack of its own chain; every indexed pack exists.
Data (``read_data``): every pack is read back, its hash checked, its header compared with the
index, and every blob decompressed and its chunk hash checked. Problems name the damaged
snapshots and files, so a user knows what is at risk.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from storage.errors import BackupError, NotFound
from storage.objects import Codec, pack_name, parse_pack
from storage.snapshots.manifest import SnapshotStore


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_repository(repo, read_data: bool = False, progress: Callable[[int, int], None] | None = None,
                      workers: int | None = None) -> VerifyReport:
    # Each worker holds a whole pack (its hash covers all of it): two keep both cores busy on
    # local disk; more hide the latency of a cloud store.
    workers = workers or (2 if repo.is_local else 4)
    rep = VerifyReport(read_data=read_data)
    index = repo.index
    store = SnapshotStore(repo.backend)
    snaps = []
    for sid in store.ids():
        try:
            snaps.append(store.header(sid))
        except BackupError as exc:
            rep.problems.append(f"snapshot {sid[:8]}: {exc.message}")
            rep.damaged_snapshots.append(sid)
    rep.snapshots = len(snaps)
    existing = {o.name.rsplit("/", 1)[-1]: o.size for o in repo.backend.list("data/")}
    missing_packs = [p for p in index.pack_run if p not in existing]
    for p in missing_packs:
        rep.problems.append(f"pack {p[:12]} is indexed but missing from the repository")
    bad_pairs: set[tuple[str, str]] = set()
    bad_packs = set(missing_packs)

    if read_data:
        blobs_by_pack: dict[str, dict[str, tuple]] = defaultdict(dict)
        for cid, loc in index.items():
            blobs_by_pack[loc.pack][cid] = (loc.offset, loc.length, loc.raw_length, loc.flags)
        codec = Codec(repo.config.compression_level)
        todo = [p for p in index.pack_run if p in existing]
        done = [0, 0]

        def check_pack(pack: str) -> tuple[str, list[str], list[str], int]:
            problems, bad = [], []
            try:
                data = repo.backend.load(pack_name(pack))
            except NotFound:
                return pack, [f"pack {pack[:12]} disappeared during verify"], list(blobs_by_pack[pack]), 0
            try:
                entries = parse_pack(data, pack)
            except BackupError as exc:
                problems.append(f"pack {pack[:12]}: {exc.message}")
                entries = None
            for cid, (off, length, raw_len, flags) in blobs_by_pack[pack].items():
                try:
                    raw = codec.decode(data[off:off + length], flags, raw_len)
                    ok = len(raw) == raw_len and hashlib.sha256(raw).hexdigest() == cid
                except BackupError:
                    ok = False
                if not ok:
                    bad.append(cid)
            if bad and not problems:
                problems.append(f"pack {pack[:12]}: {len(bad)} chunk(s) do not match their hash")
            elif entries is not None and len(entries) != len(blobs_by_pack[pack]):
                problems.append(f"pack {pack[:12]}: header lists {len(entries)} chunks, index {len(blobs_by_pack[pack])}")
            return pack, problems, bad, len(data)

        with ThreadPoolExecutor(workers, thread_name_prefix="bf-verify") as pool:
            for pack, problems, bad, n in pool.map(check_pack, todo):
                rep.packs += 1
                rep.bytes_read += n
                rep.problems.extend(problems)
                if problems or bad:
                    bad_packs.add(pack)
                bad_pairs.update((pack, c) for c in bad)
                done[0] += 1
                done[1] += n
                if progress:
                    progress(done[0], done[1])
    else:
        rep.packs = sum(1 for p in index.pack_run if p in existing)
    rep.chunks = len(index)

    chain_packs: dict[str, set[str]] = defaultdict(set)
    for s in snaps:
        chain_packs[s.chain].update(s.packs)
    for s in snaps:
        own = chain_packs[s.chain]
        damaged: list[str] = []
        outside = 0
        try:
            tree = store.load_tree(s)  # one tree at a time: memory stays flat
        except BackupError as exc:
            rep.problems.append(f"snapshot {s.id[:8]}: {exc.message}")
            rep.damaged_snapshots.append(s.id)
            continue
        for e in tree:
            for cid in e.get("chunks", ()):
                locs = [loc for loc in index.locations(cid) if loc.pack in existing and (loc.pack, cid) not in bad_pairs]
                if not locs:
                    damaged.append(e["path"])
                    break
                if not any(loc.pack in own for loc in locs):
                    outside += 1
        if outside:
            rep.problems.append(f"snapshot {s.id[:8]}: {outside} chunk reference(s) lie outside its chain")
        if damaged:
            rep.damaged_snapshots.append(s.id)
            rep.damaged_files[s.id] = damaged
            shown = ", ".join(damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
            rep.problems.append(f"snapshot {s.id[:8]} cannot restore {len(damaged)} file(s): {shown}")
    rep.damaged_packs = sorted(bad_packs)
    rep.ok = not rep.problems
    return rep
