"""Scanning a workspace: excludes, special files, links, and reuse of unchanged files."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from storage import Repository
from storage.errors import InvalidInput
from storage.snapshots import scan_workspace


def _paths(scan) -> set[str]:
    return {e["path"] for e in scan.entries}


@pytest.fixture
def work(tmp_path):
    src = tmp_path / "src"
    for rel in ("keep.py", "debug.log", "sub/keep.txt", "sub/trace.log", "build/out.o", "sub/build/x.o",
                "node_modules/pkg/index.js", "docs/cache/page.html", "docs/page.md"):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    return src


def test_excludes_by_name_glob_dir_name_and_path_pattern(work):
    scan = scan_workspace(str(work), ["*.log", "build", "node_modules/", "docs/cache/*"])
    paths = _paths(scan)
    assert {"keep.py", "sub", "sub/keep.txt", "docs", "docs/page.md"} <= paths
    # a name pattern matches at any depth; a folder pattern drops the folder and everything below
    for gone in ("debug.log", "sub/trace.log", "build", "build/out.o", "sub/build", "sub/build/x.o",
                 "node_modules", "node_modules/pkg/index.js", "docs/cache/page.html"):
        assert gone not in paths, gone


def test_excludes_apply_to_a_real_backup(work):
    repo = Repository.init(f"memory://{uuid.uuid4().hex}")
    repo.backup(str(work), excludes=["*.log", "build/"])
    listed = {e["path"] for e in repo.ls("latest")}
    assert "sub/keep.txt" in listed and "sub/trace.log" not in listed and "build/out.o" not in listed


def test_fifo_and_socket_are_skipped_with_a_warning(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.txt").write_text("x")
    os.mkfifo(src / "a-fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "a-socket"))
    try:
        scan = scan_workspace(str(src))
        repo = Repository.init(f"memory://{uuid.uuid4().hex}")
        result = repo.backup(str(src))  # would hang forever if it opened the FIFO
    finally:
        sock.close()
    assert _paths(scan) == {"plain.txt"}
    assert any("a-fifo" in w and "FIFO" in w for w in scan.warnings)
    assert any("a-socket" in w and "socket" in w for w in scan.warnings)
    assert any("a-fifo" in w for w in result.warnings)
    assert result.stats["warnings"] >= 2


def test_symlinks_are_recorded_not_followed_and_hard_links_detected(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f.txt").write_text("content")
    os.symlink("d", src / "to-dir")
    os.symlink(str(tmp_path), src / "to-outside")
    os.link(src / "d/f.txt", src / "hard.txt")
    scan = scan_workspace(str(src))
    by = {e["path"]: e for e in scan.entries}
    assert by["to-dir"]["type"] == "symlink" and by["to-dir"]["target"] == "d"
    assert by["to-outside"]["target"] == str(tmp_path)
    assert not any(p.startswith("to-dir/") or p.startswith("to-outside/") for p in by)
    kinds = sorted((by["d/f.txt"]["type"], by["hard.txt"]["type"]))
    assert kinds == ["file", "hardlink"]
    link = by["d/f.txt"] if by["d/f.txt"]["type"] == "hardlink" else by["hard.txt"]
    assert link["link"] in ("d/f.txt", "hard.txt") and link["link"] != link["path"]
    # only the primary is read
    assert [scan.entries[i]["path"] for i in scan.to_read] == [link["link"]]


def test_unchanged_files_are_reused_without_reading_and_touched_ones_reread(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.txt").write_bytes(os.urandom(1000 + i))
    repo = Repository.init(f"memory://{uuid.uuid4().hex}")
    first = repo.backup(str(src))
    assert first.stats["bytes_read"] == first.stats["bytes_total"] == sum(1000 + i for i in range(20))

    again = repo.backup(str(src))
    assert again.type == "incremental"
    assert again.stats["bytes_read"] == 0 and again.stats["files_read"] == 0
    assert again.stats["bytes_added"] == 0

    st = os.stat(src / "f3.txt")
    os.utime(src / "f3.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched, same content
    (src / "f7.txt").write_bytes(os.urandom(1007))                              # rewritten
    third = repo.backup(str(src))
    assert third.stats["files_read"] == 2
    assert third.stats["bytes_read"] == 1003 + 1007
    assert third.stats["bytes_new"] == 1007  # the touched file's content was already stored
    snap = repo.snapshot(third.snapshot_id)
    assert {e["path"]: e for e in snap.tree}["f3.txt"]["mtime_ns"] == st.st_mtime_ns + 1_000_000


def test_missing_source_is_one_clear_sentence(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        scan_workspace(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="is not a directory"):
        scan_workspace(str(tmp_path / "file"))


def test_a_folder_replaced_by_a_symlink_after_it_was_listed_is_not_followed(tmp_path, monkeypatch):
    import storage.snapshots.scan as scan_mod

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "mine.txt").write_text("mine\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the source\n")
    real_entry = scan_mod._Walker._entry

    def entry(self, de, rel, dir_fd):
        e = real_entry(self, de, rel, dir_fd)
        if rel == "sub":  # listed as a folder; replaced before the walk goes into it
            os.rename(src / "sub", tmp_path / "moved")
            os.symlink(outside, src / "sub")
        return e

    monkeypatch.setattr(scan_mod._Walker, "_entry", entry)
    scan = scan_workspace(str(src))
    assert _paths(scan) == {"sub"}
    assert scan.warnings == ["directory sub was replaced by a symlink or a file after it was listed; not backed up"]
    assert scan.missing == []


def test_a_source_that_is_a_symlink_to_a_folder_is_backed_up(tmp_path):
    real = tmp_path / "real"
    (real / "a").mkdir(parents=True)
    (real / "a" / "f.txt").write_text("f\n")
    os.symlink(real, tmp_path / "link")
    scan = scan_workspace(str(tmp_path / "link"))
    assert _paths(scan) == {"a", "a/f.txt"} and scan.warnings == []
