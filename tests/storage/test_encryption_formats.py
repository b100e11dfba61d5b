"""Encrypted repositories written by earlier backupflow keep working, and blobs sealed under
session keys never repeat a nonce (docs/FORMAT.md, "encryption")."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import pytest

from storage import Repository

FIXTURE = Path(__file__).parent / "data" / "encrypted-v2-per-object-subkeys.tar.gz"
FIXTURE_PASSWORD = "written with per-object subkeys"
OLD_SNAPSHOT = "2778e5138e2e89111d9dec8ca1c9edd475c6bbe6637e65dc7f2bcda2c1e13e2d"


def _fixture_source(root: Path) -> Path:
    """The files the fixture repository holds (made the same way when it was written)."""
    src = root / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "notes.txt").write_bytes(
        b"".join(b"line %d of the notes written before session keys\n" % i for i in range(14000)))
    (src / "noise.bin").write_bytes(random.Random(13).randbytes(3000))
    (src / "small.txt").write_bytes(b"a small file\n")
    return src


def _same_tree(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.fixture
def old_repository(tmp_path) -> Path:
    """A repository whose every object is sealed under a subkey of its own (the first
    encrypted format), unpacked into ``tmp_path``."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "repo"


def test_a_repository_sealed_with_per_object_subkeys_restores_verifies_and_takes_new_backups(
        old_repository, tmp_path):
    before = _fixture_source(tmp_path / "before")
    repo = Repository.open(str(old_repository), password=FIXTURE_PASSWORD)
    assert repo.encrypted and repo.verify(read_data=True).ok
    repo.restore(OLD_SNAPSHOT, str(tmp_path / "restored-before"))
    _same_tree(before, tmp_path / "restored-before")

    src = _fixture_source(tmp_path / "after")
    (src / "new.txt").write_bytes(b"written after the format changed\n" * 5000)
    (src / "docs" / "notes.txt").write_bytes((src / "docs" / "notes.txt").read_bytes() + b"one more line\n")
    new = repo.backup(str(src)).snapshot_id
    again = Repository.open(str(old_repository), password=FIXTURE_PASSWORD)
    assert again.verify(read_data=True).ok  # blobs of both formats side by side
    again.restore(new, str(tmp_path / "restored-after"))
    _same_tree(src, tmp_path / "restored-after")
    again.restore(OLD_SNAPSHOT, str(tmp_path / "restored-old-again"))
    _same_tree(before, tmp_path / "restored-old-again")
