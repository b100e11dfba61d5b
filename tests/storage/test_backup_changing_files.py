"""Files that vanish or change while a backup reads them: a warning, and a snapshot with what
was read (a file that kept changing is marked ``changed_while_read``)."""

from __future__ import annotations

import os

import pytest

import storage.repository.backup as backup_mod
from storage import Repository
from storage.repository.pack_saver import PackSaver


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


@pytest.mark.parametrize("size", [100_000, 12 << 20], ids=["read-whole", "streamed"])
def test_a_file_that_keeps_growing_is_stored_as_the_prefix_read_marked_and_warned(tmp_path, monkeypatch, size):
    src = tmp_path / "src"
    src.mkdir()
    (src / "steady.txt").write_text("steady\n")
    busy = src / "busy.log"
    busy.write_bytes(os.urandom(size))
    # An active log: every time the backup hands on a chunk, the log has grown by a line, so it
    # changes under every read, as under a process appending to it.
    real_add = PackSaver.add

    def add(self, cid, data):
        with open(busy, "ab") as f:
            f.write(b"another log line\n")
        return real_add(self, cid, data)

    monkeypatch.setattr(PackSaver, "add", add)
    repo = _repo(tmp_path)
    res = repo.backup(str(src))
    monkeypatch.setattr(PackSaver, "add", real_add)
    assert res.missing == []
    [warning] = res.warnings
    assert "busy.log kept changing while it was read; stored the" in warning
    entry = next(e for e in repo.snapshot(res.snapshot_id).tree if e["path"] == "busy.log")
    assert entry["changed_while_read"] is True and entry["size"] > size
    assert res.stats["files"] == 2 and res.stats["warnings"] == 1
    # What was stored is what the log held when its last read began: a prefix of it now.
    out = tmp_path / "out"
    repo.restore(res.snapshot_id, str(out))
    now = busy.read_bytes()
    assert len(now) > entry["size"] and (out / "busy.log").read_bytes() == now[:entry["size"]]
    assert repo.verify(read_data=True).ok
    # Once the log is quiet, the next backup reads it whole and the mark is gone.
    again = repo.backup(str(src))
    entry = next(e for e in repo.snapshot(again.snapshot_id).tree if e["path"] == "busy.log")
    assert again.warnings == [] and entry["size"] == len(now) and "changed_while_read" not in entry


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


def test_a_hard_link_to_a_file_that_vanished_is_left_out_too_so_the_snapshot_restores(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("shared inode\n")
    os.link(src / "a.txt", src / "b.txt")
    (src / "c.txt").write_text("other\n")
    repo = _repo(tmp_path)
    plan = repo.plan_backup(str(src))
    scan = repo.scan(plan)
    assert [e["type"] for e in scan.entries] == ["file", "hardlink", "file"]
    (src / "a.txt").unlink()  # the name the tree reads the data from goes
    stored = repo.store(plan, scan)
    snap = repo.commit(plan, stored)
    assert [e["path"] for e in snap.tree] == ["c.txt"]
    assert any("b.txt is a hard link to a.txt, which was not backed up" in w for w in stored.warnings)
    repo.restore(snap.id, str(tmp_path / "out"))
    assert (tmp_path / "out" / "c.txt").read_text() == "other\n"


def test_a_file_replaced_by_a_symlink_or_fifo_after_the_scan_is_not_followed_or_waited_on(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("was-file", "was-fifo", "kept.txt", "was-dir/inside.txt"):
        (src / name).parent.mkdir(exist_ok=True)
        (src / name).write_text(name)
    repo = _repo(tmp_path)
    plan = repo.plan_backup(str(src))
    scan = repo.scan(plan)
    # Between the scan and the read: one file becomes a symlink to an endless device, one a FIFO
    # nobody writes to. Following the one or opening the other would never finish.
    (src / "was-file").unlink()
    os.symlink("/dev/zero", src / "was-file")
    (src / "was-fifo").unlink()
    os.mkfifo(src / "was-fifo")
    (src / "was-dir" / "inside.txt").unlink()
    (src / "was-dir").rmdir()
    (src / "was-dir").write_text("a file now")
    stored = repo.store(plan, scan)
    snap = repo.commit(plan, stored)
    assert [e["path"] for e in snap.tree] == ["kept.txt", "was-dir"]
    assert sorted(stored.warnings) == [
        "a folder above was-dir/inside.txt was replaced by a file or a symlink after the scan; not backed up",
        "was-fifo was replaced by a special file after the scan; not backed up",
        "was-file was replaced by a symlink after the scan; not backed up",
    ]
    assert stored.missing == []


def test_a_folder_swapped_for_a_symlink_after_the_scan_never_leads_a_read_outside_the_source(tmp_path):
    # A backup run as root over a folder others can write: swapping a folder for a symlink to
    # a secret folder between the scan and the read must not put the secret into the backup.
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "inside.txt").write_text("the secret, not part of the source")
    src = tmp_path / "src"
    (src / "deep" / "dir").mkdir(parents=True)
    (src / "deep" / "dir" / "inside.txt").write_text("what the scan saw")
    (src / "kept.txt").write_text("kept")
    repo = _repo(tmp_path)
    plan = repo.plan_backup(str(src))
    scan = repo.scan(plan)
    os.rename(src / "deep", tmp_path / "moved-away")
    (src / "deep").mkdir()
    os.symlink(secret, src / "deep" / "dir")  # the folder above the file is now a symlink
    stored = repo.store(plan, scan)
    snap = repo.commit(plan, stored)
    assert "deep/dir/inside.txt" not in [e["path"] for e in snap.tree]
    assert "a folder above deep/dir/inside.txt was replaced by a file or a symlink after the scan; not backed up" \
        in stored.warnings
    out = tmp_path / "out"
    repo.restore(snap.id, str(out))
    assert not any("the secret" in p.read_text() for p in out.rglob("*") if p.is_file() and not p.is_symlink())
