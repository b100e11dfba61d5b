"""Every kind of damage to every object kind of docs/FORMAT.md, against verify.

For each object kind (config, index, snapshot manifest, tree, pack header, pack blob) the
suite flips a byte, truncates, deletes, puts another object of the same kind under its name,
and adds a stray file. ``verify --read-data`` must catch every kind; plain verify every kind
the format lets it see without reading packs (FORMAT.md says which need --read-data). A deleted
manifest is only visible against another record of what exists: the audit log, passed here
as ``expected`` the way the verify task does. Restore is tried on every snapshot of every
damaged copy: it restores whole, restores the rest naming what it left out, or refuses in one
sentence, and never gives back a file with other content. The counts are printed with the test
results.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from storage import Repository
from storage.errors import BackupError, IntegrityError
from storage.objects import pack_name
from storage.snapshots.manifest import snapshot_name
from tests.storage.test_damage_locality import _write, crafted_manifest, flip_byte


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Two sources: a full each, then an incremental of the first (3 packs, 3 index objects,
    3 trees, 3 manifests)."""
    base = tmp_path_factory.mktemp("corruption")
    root = base / "repo"
    repo = Repository.init(str(root))
    for name in ("one", "two"):
        src = base / name
        (src / "sub").mkdir(parents=True)
        (src / "sub" / f"{name}.bin").write_bytes(os.urandom(150_000))
        (src / f"{name}.txt").write_text(f"{name}\n" * 2000)
        repo.backup(str(src))
    (base / "one" / "new.bin").write_bytes(os.urandom(50_000))
    repo.backup(str(base / "one"))
    return root


class Repo:
    """A copy of the template and handy names in it."""

    def __init__(self, root: Path):
        self.root = root
        repo = Repository.open(str(root))
        self.snaps = repo.snapshots.all()
        self.ids = {s.id: f"{s.source} at {s.time}" for s in self.snaps}
        self.first = self.snaps[0]
        self.other = self.snaps[1]
        self.index = sorted((root / "index").iterdir())
        self.pack = root / pack_name(self.first.packs[0])
        self.other_pack = root / pack_name(self.other.packs[0])
        entry = next(e for e in repo.snapshot(self.first.id).tree if e["path"] == "sub/one.bin")
        self.blob = repo.index.locations(entry["chunks"][0])[0]

    def tree(self, snap) -> Path:
        return self.root / "trees" / snap.tree_id

    def manifest(self, snap) -> Path:
        return self.root / snapshot_name(snap.id)


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    _write(path, data[: len(data) // 2 if keep is None else keep])


def _swap(path: Path, other: Path) -> None:
    _write(path, other.read_bytes())


def _flip_seed(r: Repo) -> None:
    doc = json.loads((r.root / "config").read_bytes())
    doc["chunker"]["seed"] ^= 1
    _write(r.root / "config", json.dumps(doc, indent=1).encode())


def _flip_pack_header(r: Repo) -> None:
    size = r.pack.stat().st_size
    flip_byte(r.pack, size - 20)                    # inside the compressed header, before the trailer


def _time_is_a_number(r: Repo) -> None:
    doc = json.loads(Repository.open(str(r.root)).snapshot(r.first.id).to_bytes())
    crafted_manifest(r.root, {**doc, "time": 5})


# kind -> (damage, needs --read-data)
KINDS: dict[str, tuple[Callable[[Repo], None], bool]] = {
    "config: flipped chunker seed bit": (_flip_seed, False),
    "config: flipped byte": (lambda r: flip_byte(r.root / "config", 3), False),
    "config: truncated": (lambda r: _truncate(r.root / "config"), False),
    "config: deleted": (lambda r: (r.root / "config").unlink(), False),
    "index: flipped byte": (lambda r: flip_byte(r.index[0]), False),
    "index: truncated": (lambda r: _truncate(r.index[0]), False),
    "index: deleted": (lambda r: r.index[0].unlink(), False),
    "index: swapped with another index object": (lambda r: _swap(r.index[0], r.index[1]), False),
    "index: stray file": (lambda r: _write(r.root / "index" / "stray.json", b"{}"), False),
    "manifest: flipped byte": (lambda r: flip_byte(r.manifest(r.first)), False),
    "manifest: truncated": (lambda r: _truncate(r.manifest(r.first)), False),
    "manifest: deleted": (lambda r: r.manifest(r.first).unlink(), False),
    "manifest: swapped with another manifest": (lambda r: _swap(r.manifest(r.first), r.manifest(r.other)), False),
    "manifest: stray file": (lambda r: _write(r.root / "snapshots" / "stray", b"hello"), False),
    "manifest: a JSON list under its own hash": (lambda r: crafted_manifest(r.root, ["a", "list"]), False),
    "manifest: time is a number, under its own hash": (_time_is_a_number, False),
    "tree: flipped byte": (lambda r: flip_byte(r.tree(r.first)), False),
    "tree: truncated": (lambda r: _truncate(r.tree(r.first)), False),
    "tree: deleted": (lambda r: r.tree(r.first).unlink(), False),
    "tree: swapped with another tree": (lambda r: _swap(r.tree(r.first), r.tree(r.other)), False),
    "tree: stray file": (lambda r: _write(r.root / "trees" / "stray", b"[]"), False),
    "pack: deleted": (lambda r: r.pack.unlink(), False),
    "pack: truncated into its blobs": (lambda r: _truncate(r.pack, r.blob.offset + 10), False),
    "pack: stray file": (lambda r: _write(r.pack.parent / "stray", b"x" * 100), False),
    "pack header: flipped byte": (_flip_pack_header, True),
    "pack header: trailer cut off": (lambda r: _truncate(r.pack, r.pack.stat().st_size - 4), True),
    "pack blob: flipped byte": (lambda r: flip_byte(r.pack, r.blob.offset + r.blob.length // 2), True),
    "pack: swapped with another pack": (lambda r: _swap(r.pack, r.other_pack), True),
}


def _verify(root: Path, read_data: bool, expected: dict[str, str]) -> tuple[bool, str]:
    """(damage detected, what was said)."""
    try:
        report = Repository.open(str(root)).verify(read_data=read_data, expected=expected)
    except IntegrityError as exc:
        return True, exc.message                     # e.g. the config: nothing can be opened
    except BackupError as exc:
        return False, f"{type(exc).__name__}: {exc.message}"
    return not report.ok, "; ".join(report.problems)


def _damaged_copies(template: Path, tmp_path: Path):
    """(kind, needs --read-data, Repo) for a fresh copy of the template with that damage."""
    for i, (kind, (damage, needs_read_data)) in enumerate(KINDS.items()):
        root = tmp_path / f"k{i}"
        shutil.copytree(template, root)
        r = Repo(root)
        damage(r)
        yield kind, needs_read_data, r


def test_every_corruption_kind_is_detected(template, tmp_path, capsys):
    caught_read, caught_plain, plain_possible, missed = 0, 0, 0, []
    for kind, needs_read_data, r in _damaged_copies(template, tmp_path):
        root = r.root
        read_ok, read_said = _verify(root, True, r.ids)
        plain_ok, plain_said = _verify(root, False, r.ids)
        caught_read += read_ok
        if not read_ok:
            missed.append(f"--read-data missed {kind}")
        if not needs_read_data:
            plain_possible += 1
            caught_plain += plain_ok
            if not plain_ok:
                missed.append(f"plain verify missed {kind}: {plain_said}")
    total = len(KINDS)
    line = (f"corruption kinds: {total}; verify --read-data caught {caught_read} of {total}; plain verify caught "
            f"{caught_plain} of the {plain_possible} its format can see ({total - plain_possible} need --read-data)")
    with capsys.disabled():
        print("\n" + line)
    assert not missed, line + "\n" + "\n".join(missed)
    assert caught_read == total and caught_plain == plain_possible


def _restore_outcome(root: Path, snap, files: list[str], target: Path) -> tuple[str, list[str]]:
    """('refused' | 'partial' | 'whole', files restored with content that differs from the source,
    or that the snapshot has and a restore calling itself whole left out)."""
    try:
        result = Repository.open(str(root)).restore(snap.id, str(target))
    except BackupError:
        return "refused", []                          # one sentence, nothing claimed
    wrong = []
    for path in sorted(p for p in target.rglob("*") if p.is_file() and not p.name.endswith(".damaged")):
        rel = path.relative_to(target).as_posix()
        if rel in result.not_restored or path.read_bytes() != (Path(snap.source) / rel).read_bytes():
            wrong.append(rel)
    if not result.not_restored:
        wrong += [f"{p} (missing)" for p in files if not (target / p).is_file()]
    return ("partial" if result.not_restored else "whole"), wrong


def test_no_corruption_kind_makes_a_restore_give_wrong_data(template, tmp_path, capsys):
    """Every snapshot of every damaged copy restores whole, restores the rest and names what it
    left out, or refuses in one sentence: a restored file is never silently different."""
    outcomes: dict[str, int] = {"whole": 0, "partial": 0, "refused": 0}
    wrong: list[str] = []
    snaps = Repo(template).snaps
    files = {s.id: [e["path"] for e in Repository.open(str(template)).snapshot(s.id).tree if e["type"] == "file"]
             for s in snaps}
    for kind, _, r in _damaged_copies(template, tmp_path):
        for n, snap in enumerate(snaps):
            outcome, bad = _restore_outcome(r.root, snap, files[snap.id], r.root.parent / f"{r.root.name}-out{n}")
            outcomes[outcome] += 1
            wrong += [f"{kind}: snapshot {snap.id[:8]} restored {p} with wrong content" for p in bad]
    line = (f"corruption kinds x snapshots: {sum(outcomes.values())} restores: {outcomes['whole']} whole, "
            f"{outcomes['partial']} partial naming what they left out, {outcomes['refused']} refused; "
            f"{len(wrong)} with a wrong file")
    with capsys.disabled():
        print("\n" + line)
    assert not wrong, "\n".join(wrong)
    assert outcomes["whole"] and outcomes["partial"] and outcomes["refused"]


def test_verify_names_the_damaged_object_and_what_depends_on_it(template, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(template, root)
    r = Repo(root)
    flip_byte(r.pack, r.blob.offset + r.blob.length // 2)
    report = Repository.open(str(root)).verify(read_data=True)
    assert pack_name(r.first.packs[0]) in report.damaged_objects
    # the incremental of source one still points at that data: both snapshots and the file are named
    dependants = {s.id for s in r.snaps if s.chain == r.first.chain}
    assert set(report.damaged_snapshots) == dependants
    assert all(report.damaged_files[sid] == ["sub/one.bin"] for sid in dependants)
