"""Version history written by several processes at once, on local disk and the cloud protocol servers."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage import Repository

WRITER = """
import json, sys
from storage import Repository
url, options, name, count = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with Repository.open(url, options) as repo:
    store = repo.versions()
    for i in range(count):
        store.create_version("/shared/notes.txt", f"{name} {i}\\n".encode(), author=name, message=f"edit {i}")
"""


def _race(url: str, options: dict, writers: int, each: int) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, json.dumps(options), f"writer{w}", str(each)],
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


def _assert_linear_and_whole(repo: Repository, writers: int, each: int) -> None:
    store = repo.versions()
    versions = store.get_versions("/shared/notes.txt")
    assert [v.number for v in versions] == list(range(1, writers * each + 1))  # nothing lost, no gaps
    assert versions[0].parent_id is None
    assert all(v.parent_id == p.version_id for p, v in zip(versions, versions[1:], strict=False))  # one line, no fork
    contents = {store.get_content(v).decode() for v in versions}
    assert contents == {f"writer{w} {i}\n" for w in range(writers) for i in range(each)}
    for w in range(writers):  # each writer's own edits stay in its order
        mine = [v.message for v in versions if v.author == f"writer{w}"]
        assert mine == [f"edit {i}" for i in range(each)]


def test_processes_adding_versions_of_one_file_at_once_lose_nothing(tmp_path):
    url = str(tmp_path / "repo")
    Repository.init(url).close()
    _race(url, {}, writers=4, each=8)
    with Repository.open(url) as repo:
        _assert_linear_and_whole(repo, 4, 8)
        assert repo.verify(read_data=True).ok


def _race_threads(url: str, options: dict, writers: int, each: int) -> None:
    """Writers in threads of this process, each with its own repository handle: on a cloud store
    the conditional write decides as it does between processes (the local test covers those)."""
    def write(w: int) -> None:
        with Repository.open(url, options) as repo:
            store = repo.versions()
            for i in range(each):
                store.create_version("/shared/notes.txt", f"writer{w} {i}\n".encode(), author=f"writer{w}",
                                     message=f"edit {i}")

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))


@pytest.mark.cloud
def test_version_history_on_cloud_stores(cloud_destination):
    dest = cloud_destination
    with Repository.open(dest.url, dict(dest.options), create=True) as repo:
        store = repo.versions()
        a = store.create_version("/cloud/a.txt", b"alpha\n", author="ann", message="first")
        b = store.create_version("/cloud/b.txt", b"alpha\n")
        assert a.content_hash == b.content_hash
        store.tag_version("/cloud/a.txt", a.version_id, "v1")
    _race_threads(dest.url, dict(dest.options), writers=3, each=2)
    with Repository.open(dest.url, dict(dest.options)) as repo:
        store = repo.versions()
        assert store.get_version("/cloud/a.txt", "v1").message == "first"
        assert store.get_content(store.get_version("/cloud/b.txt", "latest")) == b"alpha\n"
        _assert_linear_and_whole(repo, 3, 2)
        assert store.stats()["total_files"] == 3
