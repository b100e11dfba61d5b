"""Packs of a backup to local disk are committed on the upload thread while the readers go
on (storage/repository/pack_saver.py): a pack that cannot be stored there still fails the
backup, leaves no snapshot and no half-written pack, and the next backup stores everything."""

from __future__ import annotations

import errno
import os

import pytest

from storage import Repository
from storage.backend import local
from storage.errors import BackupError
from tests.treegen import assert_same_tree


def _source(root, files: int = 8, size: int = 600_000):
    root.mkdir()
    for n in range(files):
        (root / f"f{n}.bin").write_bytes(os.urandom(size))  # incompressible: 1 MiB packs fill
    return root


def test_a_pack_that_cannot_be_stored_fails_the_backup_and_the_next_one_stores_it(monkeypatch, tmp_path):
    src = _source(tmp_path / "src")
    repo = Repository.init(str(tmp_path / "repo"), pack_size_mib=1)
    real_place = local._FileSink.place
    packs_placed = []

    def place(self, path):
        if f"{os.sep}data{os.sep}" in path:
            packs_placed.append(path)
            if len(packs_placed) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_place(self, path)

    monkeypatch.setattr(local._FileSink, "place", place)
    with pytest.raises(BackupError, match="No space"):
        repo.backup(str(src))
    monkeypatch.setattr(local._FileSink, "place", real_place)

    assert repo.snapshots.all() == []
    left = [f for _, _, files in os.walk(tmp_path / "repo" / "data") for f in files if f.startswith(".tmp-")]
    assert left == []  # the failed pack's temporary file went with it

    snap = repo.backup(str(src))
    assert snap.stats["bytes_added"] < 8 * 600_000  # the pack that landed before the failure is reused
    repo.restore(snap.snapshot_id, str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out")
    assert repo.verify(read_data=True).ok


def test_small_and_large_blobs_gathered_in_one_pack_restore_exactly(tmp_path):
    """Small blobs are gathered into larger writes and large ones written as they come: a pack
    of both, in any order, still holds every blob where its header says."""
    src = tmp_path / "src"
    src.mkdir()
    for n in range(60):
        size = (100, 70_000, 3_000, 300_000, 65_536)[n % 5]
        (src / f"f{n:02d}.bin").write_bytes(os.urandom(size))
        (src / f"t{n:02d}.txt").write_text(f"line {n}\n" * (n * 40))
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    snap = repo.backup(str(src))
    assert repo.verify(read_data=True).ok
    repo.restore(snap.snapshot_id, str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out")
