"""Verify: structure (indexed chunks, existing packs) and --read-data (every chunk hash), naming
the damaged snapshots and files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import Repository
from storage.objects import pack_name
from storage.snapshots.manifest import snapshot_name


@pytest.fixture
def repo_two_snapshots(tmp_path):
    """A local repository with a full of folder one and a full of folder two (separate packs)."""
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    sids = {}
    for name in ("one", "two"):
        src = tmp_path / name
        (src / "sub").mkdir(parents=True)
        (src / "sub" / f"{name}-a.bin").write_bytes(os.urandom(150_000))
        (src / f"{name}-b.txt").write_bytes(b"shared text\n" * 1000)
        sids[name] = repo.backup(str(src)).snapshot_id
    return root, sids


def test_clean_repository_verifies(repo_two_snapshots):
    root, sids = repo_two_snapshots
    report = Repository.open(str(root)).verify(read_data=True)
    assert report.ok and report.problems == []
    # the shared text file is one chunk id, stored once in each chain
    assert report.snapshots == 2 and report.packs == 2 and report.chunks == 3
    assert report.bytes_read == sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())


def test_flipped_byte_is_caught_by_read_data_and_names_snapshot_and_file(repo_two_snapshots):
    root, sids = repo_two_snapshots
    repo = Repository.open(str(root))
    target = repo.snapshot(sids["one"])
    pack = target.packs[0]
    # flip one byte inside the blob of one-a.bin
    cid = next(e for e in target.tree if e["path"] == "sub/one-a.bin")["chunks"][0]
    loc = next(loc for loc in repo.index.locations(cid) if loc.pack == pack)
    path = root / pack_name(pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))

    report = Repository.open(str(root)).verify(read_data=True)
    assert not report.ok
    assert report.damaged_packs == [pack]
    assert report.damaged_snapshots == [sids["one"]]           # snapshot two is intact
    assert report.damaged_files == {sids["one"]: ["sub/one-a.bin"]}
    text = "\n".join(report.problems)
    assert sids["one"][:8] in text and "sub/one-a.bin" in text and pack[:12] in text


def test_deleted_pack_is_caught_by_structure_only_verify(repo_two_snapshots, tmp_path):
    root, sids = repo_two_snapshots
    repo = Repository.open(str(root))
    pack = repo.snapshot(sids["two"]).packs[0]
    os.remove(root / pack_name(pack))

    report = Repository.open(str(root)).verify(read_data=False)
    assert not report.ok and report.read_data is False
    assert report.bytes_read == 0                                 # structure only: no pack was read
    assert pack in report.damaged_packs
    assert report.damaged_snapshots == [sids["two"]]
    assert any("missing" in p and pack[:12] in p for p in report.problems)
    assert "sub/two-a.bin" in report.damaged_files[sids["two"]]   # its only copy was in that pack


def test_verify_names_exactly_the_files_restore_cannot_give_back(repo_two_snapshots, tmp_path):
    root, sids = repo_two_snapshots
    repo = Repository.open(str(root))
    os.remove(root / pack_name(repo.snapshot(sids["two"]).packs[0]))
    report = Repository.open(str(root)).verify(read_data=False)
    unrestorable = []
    for e in repo.snapshot(sids["two"]).tree:
        if e["type"] != "file":
            continue
        result = Repository.open(str(root)).restore(sids["two"], str(tmp_path / "out" / e["path"]), include=[e["path"]])
        unrestorable += list(result.not_restored)
    assert report.damaged_files[sids["two"]] == unrestorable, (
        "verify and restore disagree about which files survive a lost pack: restore looks each chunk up "
        "in its own chain's packs first (ChunkLocator) and fails when that pack is gone, "
        "while verify counts a chunk as safe when any other chain still holds a copy")


def test_damaged_manifest_is_named(repo_two_snapshots):
    root, sids = repo_two_snapshots
    path = Path(root) / snapshot_name(sids["one"])
    os.chmod(path, 0o644)
    path.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    report = Repository.open(str(root)).verify()
    assert not report.ok
    assert sids["one"] in report.damaged_snapshots
    assert any(sids["one"][:8] in p for p in report.problems)
