"""Fixtures shared by the storage tests."""

from __future__ import annotations

import os

import pytest

from storage import Repository


@pytest.fixture
def two_sources(tmp_path):
    """Two sources, one full each, then an incremental of source one: (root, ids by name)."""
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    ids = {}
    for name in ("one", "two"):
        src = tmp_path / name
        (src / "sub").mkdir(parents=True)
        (src / "sub" / f"{name}.bin").write_bytes(os.urandom(120_000))
        (src / f"{name}.txt").write_text(f"{name}\n" * 500)
        ids[name] = repo.backup(str(src)).snapshot_id
    (tmp_path / "one" / "new.txt").write_text("new\n")
    ids["one-inc"] = repo.backup(str(tmp_path / "one")).snapshot_id
    return root, ids
