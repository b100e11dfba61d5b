"""Fixtures shared by the storage tests."""

from __future__ import annotations

import os
import uuid

import pytest

from storage import Repository
from storage.backend import open_backend


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


BACKENDS = ["memory", "local", "s3", "azure", "gcs"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """Each backend kind opened with retry off, so a test sees exactly what the backend does:
    memory, local disk, and the S3, Azure and GCS protocol servers."""
    kind = request.param
    if kind == "memory":
        url, options = f"memory://test-{uuid.uuid4().hex}", {}
    elif kind == "local":
        url, options = str(tmp_path / "repo"), {}
    else:
        dest = request.getfixturevalue(f"{kind}_server").new_destination()
        url, options = dest.url, dest.options
    b = open_backend(url, options, retry_seconds=0)
    yield b
    b.close()
