"""Files that vanish or change while a backup reads them: a warning, and a snapshot with only
what was read consistently."""

from __future__ import annotations

import os

import storage.repository.backup as backup_mod
from storage import Repository


def _repo(tmp_path):
    return Repository.init(str(tmp_path / "repo"))


def test_a_file_that_vanishes_after_the_scan_is_a_warning_not_a_failure(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays.txt").write_text("kept\n")
    (src / "goes.txt").write_text("about to vanish\n")
    repo = _repo(tmp_path)
    plan = repo.plan_backup(str(src))
    scan = repo.scan(plan)
    (src / "goes.txt").unlink()
    stored = repo.store(plan, scan)
    snap = repo.commit(plan, stored)
    assert any("goes.txt vanished" in w for w in stored.warnings)
    assert [e["path"] for e in snap.tree] == ["stays.txt"]
    out = tmp_path / "out"
    repo.restore(snap.id, str(out))
    assert (out / "stays.txt").read_text() == "kept\n" and not (out / "goes.txt").exists()


def test_a_file_that_keeps_changing_while_read_is_left_out_with_a_warning(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "steady.txt").write_text("steady\n")
    busy = src / "busy.log"
    busy.write_bytes(os.urandom(100_000))
    # A writer racing every read cannot be arranged on demand, so fstat reports the file grown
    # after each read of busy.log, as it would under a process appending to it.
    real_fstat = os.fstat
    calls = {}

    def fstat(fd):
        st = real_fstat(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("busy.log"):
            calls[fd] = calls.get(fd, 0) + 1
            if calls[fd] % 2 == 0:
                return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid,
                                       st.st_size + 10, st.st_atime, st.st_mtime, st.st_ctime))
        return st

    monkeypatch.setattr(backup_mod.os, "fstat", fstat)
    res = _repo(tmp_path).backup(str(src))
    assert any("busy.log kept changing" in w for w in res.warnings), res.warnings
    assert res.stats["files"] == 1 and res.stats["warnings"] == 1


def test_a_file_that_changed_once_is_read_again_and_kept(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "once.txt").write_bytes(b"x" * 50_000)
    real_fstat = os.fstat
    state = {"n": 0}

    def fstat(fd):
        st = real_fstat(fd)
        state["n"] += 1
        if state["n"] == 2:  # only the first read sees the file change under it
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid,
                                   st.st_size + 1, st.st_atime, st.st_mtime, st.st_ctime))
        return st

    monkeypatch.setattr(backup_mod.os, "fstat", fstat)
    repo = _repo(tmp_path)
    res = repo.backup(str(src))
    assert res.warnings == [] and res.stats["files"] == 1
    out = tmp_path / "out"
    repo.restore(res.snapshot_id, str(out))
    assert (out / "once.txt").read_bytes() == b"x" * 50_000
