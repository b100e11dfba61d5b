"""Restore a snapshot (or selected paths of it) into a target directory.

Safety first: every entry path is checked before anything is written. An absolute path, a
``..`` component, an entry below a symlink of the snapshot, or a target folder that resolves
outside the target (a pre-existing symlink) is refused with PathEscape, and nothing is
written for it. Every chunk's sha256 is checked before its bytes reach a file.

Speed: restore is bound by the kernel's file creation, so packs are processed on several
threads; each pack is read once (whole, or in coalesced ranges when little of it is needed),
and a one-chunk file is created, written, chmod-ed and timestamped through one descriptor.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat as stat_mod
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from storage.errors import NO_HARD_LINKS, NO_SYMLINKS, IntegrityError, InvalidInput, NotFound, PathEscape
from storage.objects import BlobLocation, Codec, pack_name
from storage.snapshots import Snapshot

Progress = Callable[[int, int], None]
RANGE_GAP = 256 * 1024
MAX_RANGE = 4 * 1024 * 1024  # bounds what one restore thread holds


@dataclass
class RestorePlan:
    snapshot: str
    target: str
    create: list[str] = field(default_factory=list)
    overwrite: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    bytes: int = 0
    files: int = 0
    target_exists: bool = False
    target_empty: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_path(path: str) -> None:
    parts = path.split("/")
    # A backslash is an ordinary name character on POSIX (and such files are backed up); it
    # is only a separator, and so a way out of the target, where the OS says so.
    if (not path or path.startswith("/") or "\x00" in path
            or ("\\" in path and "\\" in (os.sep, os.altsep))
            or any(p in ("", ".", "..") for p in parts)):
        raise PathEscape(f"The snapshot entry {path!r} would be written outside the target; restore refused.")


def select_entries(snap: Snapshot, include: list[str] | None) -> list[dict]:
    tree = snap.tree
    links = set()
    for e in tree:
        check_path(e["path"])
        if e["type"] == "hardlink":
            check_path(e["link"])
        if e["type"] == "symlink":
            links.add(e["path"])
    if links:
        for e in tree:
            p = e["path"]
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                if p in links:
                    raise PathEscape(f"The snapshot entry {e['path']!r} lies below the symlink {p!r}; restore refused.")
    if not include:
        return tree
    wanted = [i.strip("/") for i in include]
    for w in wanted:
        check_path(w)
    chosen = [e for e in tree if any(e["path"] == w or e["path"].startswith(w + "/") for w in wanted)]
    if not chosen:
        raise NotFound(f"None of {', '.join(include)} is in snapshot {snap.id[:8]}; see `backupflow ls {snap.id[:8]}`.")
    return chosen


def _prepare_target(target: str) -> str:
    t = os.path.abspath(os.path.expanduser(target))
    if os.path.lexists(t) and not os.path.isdir(t):
        raise InvalidInput(f"The restore target {target} exists and is not a directory; choose a directory.")
    return t


def plan_restore(snap: Snapshot, target: str, include: list[str] | None = None) -> RestorePlan:
    t = _prepare_target(target)
    entries = select_entries(snap, include)
    plan = RestorePlan(snapshot=snap.id, target=t, target_exists=os.path.isdir(t))
    plan.target_empty = not plan.target_exists or not any(True for _ in os.scandir(t))
    for e in entries:
        if e["type"] not in ("file", "hardlink", "symlink"):
            continue
        plan.files += 1
        plan.bytes += e.get("size", 0) if e["type"] == "file" else 0
        if not plan.target_empty and os.path.lexists(os.path.join(t, e["path"])):
            plan.overwrite.append(e["path"])
        else:
            plan.create.append(e["path"])
    return plan


class ChunkLocator:
    """Picks a stored copy of each chunk: one in the snapshot's own chain while that pack
    exists, else any other pack that still holds it (the same judgement verify makes)."""

    def __init__(self, repo, snap: Snapshot):
        self.index = repo.index
        self.existing = {o.name.rsplit("/", 1)[-1] for o in repo.backend.list("data/")}
        self.prefer = {p for s in repo.snapshots.all() if s.chain == snap.chain for p in s.packs}

    def locate(self, cid: str, path: str) -> BlobLocation:
        locs = [loc for loc in self.index.locations(cid) if loc.pack in self.existing]
        if not locs:
            raise IntegrityError(
                f"{path} needs chunk {cid[:12]}, which the repository no longer holds; run `backupflow verify`.")
        for loc in locs:
            if loc.pack in self.prefer:
                return loc
        return locs[0]

    def check(self, entries: list[dict]) -> int:
        """Locate every chunk of ``entries``; raises IntegrityError naming the first lost file."""
        n = 0
        for e in entries:
            for cid in e.get("chunks", ()):
                self.locate(cid, e["path"])
                n += 1
        return n


class _Dirs:
    """Creates target folders, checking once per folder that it resolves inside the target."""

    def __init__(self, target: str):
        self.target = target
        self.real_target = os.path.realpath(target)
        self.ok: set[str] = set()
        self.lock = threading.Lock()

    def ensure(self, rel_dir: str) -> None:
        if rel_dir in self.ok:
            return
        path = os.path.join(self.target, rel_dir) if rel_dir else self.target
        os.makedirs(path, exist_ok=True)
        real = os.path.realpath(path)
        if real != self.real_target and not real.startswith(self.real_target + os.sep):
            raise PathEscape(f"The folder {rel_dir!r} in the target resolves outside it (a symlink?); restore refused.")
        with self.lock:
            self.ok.add(rel_dir)


_WRITE = os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_for_write(path: str, mode: int, umask: int) -> tuple[int, bool]:
    """(fd, mode already right). A new file is created with its mode, saving a chmod; an
    existing one (or a symlink planted in its place) is truncated or replaced."""
    try:
        return os.open(path, _WRITE | os.O_CREAT | os.O_EXCL, mode), not (mode & umask)
    except FileExistsError:
        pass
    try:
        return os.open(path, _WRITE | os.O_TRUNC), False
    except OSError:
        if os.path.islink(path) or os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
            return os.open(path, _WRITE | os.O_CREAT | os.O_EXCL, 0o600), False
        raise


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[n:]
        if offset is not None:
            offset += n


def _finish_fd(fd: int, e: dict, mode_ok: bool) -> None:
    if not mode_ok:
        os.fchmod(fd, e["mode"])
    os.utime(fd, ns=(e["mtime_ns"], e["mtime_ns"]))


def restore_snapshot(repo, snap: Snapshot, target: str, include: list[str] | None = None,
                     progress: Progress | None = None, workers: int = 4) -> dict[str, Any]:
    started = time.monotonic()
    t = _prepare_target(target)
    entries = select_entries(snap, include)
    selected = {e["path"] for e in entries}
    by_path = {e["path"]: e for e in snap.tree} if any(e["type"] == "hardlink" for e in entries) else {}
    files: list[dict] = []
    hardlinks: list[dict] = []
    for e in entries:
        if e["type"] == "hardlink" and e["link"] not in selected:
            primary = by_path[e["link"]]
            e = {**primary, "path": e["path"], "mode": primary["mode"], "mtime_ns": primary["mtime_ns"]}
        if e["type"] == "file":
            files.append(e)
        elif e["type"] == "hardlink":
            hardlinks.append(e)

    locator = ChunkLocator(repo, snap)
    dests: dict[str, list[tuple[int, int]]] = defaultdict(list)  # chunk -> (file no, offset)
    locs: dict[str, BlobLocation] = {}
    for n, e in enumerate(files):
        off = 0
        for cid in e["chunks"]:
            if cid not in locs:
                locs[cid] = locator.locate(cid, e["path"])
            dests[cid].append((n, off))
            off += locs[cid].raw_length
    by_pack: dict[str, list[str]] = defaultdict(list)
    for cid, loc in locs.items():
        by_pack[loc.pack].append(cid)

    dirs = _Dirs(t)
    dirs.ensure("")
    for e in entries:
        if e["type"] == "dir":
            dirs.ensure(e["path"])
    for e in files:
        dirs.ensure(e["path"].rpartition("/")[0])

    paths = [os.path.join(t, e["path"]) for e in files]
    remaining = [len(e["chunks"]) for e in files]
    rem_lock = threading.Lock()
    umask = _current_umask()
    for n, e in enumerate(files):
        if remaining[n] == 0:  # empty file
            fd, mode_ok = _open_for_write(paths[n], e["mode"], umask)
            try:
                _finish_fd(fd, e, mode_ok)
            finally:
                os.close(fd)
        elif remaining[n] > 1:
            fd, _ = _open_for_write(paths[n], e["mode"], umask)
            try:
                os.ftruncate(fd, e["size"])
            finally:
                os.close(fd)

    codec = Codec(repo.config.compression_level)
    done = {"files": 0, "bytes": 0}

    def write_chunk(cid: str, data: bytes) -> None:
        for n, off in dests[cid]:
            e = files[n]
            if len(e["chunks"]) == 1:
                fd, mode_ok = _open_for_write(paths[n], e["mode"], umask)
                try:
                    _write_all(fd, data)
                    _finish_fd(fd, e, mode_ok)
                finally:
                    os.close(fd)
                finished = True
            else:
                fd = os.open(paths[n], os.O_WRONLY | os.O_NOFOLLOW)
                try:
                    _write_all(fd, data, off)
                finally:
                    os.close(fd)
                with rem_lock:
                    remaining[n] -= 1
                    finished = remaining[n] == 0
                if finished:
                    os.chmod(paths[n], e["mode"])
                    os.utime(paths[n], ns=(e["mtime_ns"], e["mtime_ns"]))
            with rem_lock:
                done["bytes"] += len(data)
                if finished:
                    done["files"] += 1
                if progress:
                    progress(done["files"], done["bytes"])

    def do_pack(pack: str) -> None:
        # Contiguous blobs are read together in ranges of at most MAX_RANGE, one range in
        # memory at a time: few reads, bounded memory, whatever the pack size.
        cids = sorted(by_pack[pack], key=lambda c: locs[c].offset)
        ranges: list[tuple[int, int, list[str]]] = []
        for c in cids:
            loc = locs[c]
            if ranges:
                s0, e0, group = ranges[-1]
                if loc.offset - e0 <= RANGE_GAP and loc.offset + loc.length - s0 <= MAX_RANGE:
                    ranges[-1] = (s0, max(e0, loc.offset + loc.length), group)
                    group.append(c)
                    continue
            ranges.append((loc.offset, loc.offset + loc.length, [c]))
        for base, end, group in ranges:
            data = repo.backend.load(pack_name(pack), base, end - base)
            for c in group:
                loc = locs[c]
                stored = data[loc.offset - base: loc.offset - base + loc.length]
                raw = codec.decode(stored, loc.flags, loc.raw_length)
                if hashlib.sha256(raw).hexdigest() != c:
                    who = files[dests[c][0][0]]["path"]
                    raise IntegrityError(f"Chunk {c[:12]} of {who} in pack {pack[:12]} is damaged; run `backupflow verify --read-data`.")
                write_chunk(c, raw)

    with ThreadPoolExecutor(workers, thread_name_prefix="bf-restore") as pool:
        for f in [pool.submit(do_pack, p) for p in by_pack]:
            f.result()

    copied_links = 0
    skipped_symlinks: list[str] = []
    for e in hardlinks:
        dirs.ensure(e["path"].rpartition("/")[0])
        path = os.path.join(t, e["path"])
        if os.path.lexists(path):
            os.unlink(path)
        try:
            os.link(os.path.join(t, e["link"]), path)
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            # A target without hard links (FAT, exFAT, some SMB mounts): same content, own copy.
            shutil.copy2(os.path.join(t, e["link"]), path)
            copied_links += 1
    for e in entries:
        if e["type"] != "symlink":
            continue
        dirs.ensure(e["path"].rpartition("/")[0])
        path = os.path.join(t, e["path"])
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                raise InvalidInput(f"{path} is a folder where the snapshot has a symlink; move it away first.")
            os.unlink(path)
        try:
            os.symlink(e["target"], path)
        except OSError as exc:
            if exc.errno not in NO_SYMLINKS:
                raise
            # A target without symlinks (FAT, exFAT): a link has no content to lose; it is named
            # in the result so the caller can tell the person restoring.
            skipped_symlinks.append(e["path"])
            continue
        try:
            os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=False)
        except (NotImplementedError, OSError):
            pass
    for e in sorted((e for e in entries if e["type"] == "dir"), key=lambda e: e["path"].count("/"), reverse=True):
        path = os.path.join(t, e["path"])
        os.chmod(path, stat_mod.S_IMODE(e["mode"]))
        os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]))
    return {
        "snapshot_id": snap.id, "target": t, "files": len(files) + len(hardlinks),
        "bytes": sum(e.get("size", 0) for e in files), "seconds": round(time.monotonic() - started, 3),
        "hardlinks_copied": copied_links, "symlinks_skipped": skipped_symlinks,
    }
