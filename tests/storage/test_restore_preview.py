"""What an approver is shown before a restore: only files that would change are counted as
overwritten, and the snapshot is named by its short id (a 64-digit id overflowed the UI dialog)."""

from __future__ import annotations

import os

from storage import Repository
from storage.guardian import ApprovalRequest, describe


def test_files_already_as_in_the_snapshot_are_not_counted_as_overwritten(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(7):
        (src / f"f{i}.txt").write_text(f"content {i}\n")
    os.symlink("f0.txt", src / "link")
    repo = Repository.init(str(tmp_path / "repo"))
    snap = repo.backup(str(src)).snapshot_id
    target = tmp_path / "target"
    repo.restore(snap, str(target))
    (target / "f1.txt").write_text("content X\n")           # same size, other content...
    st = os.stat(src / "f1.txt")
    os.utime(target / "f1.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the same mtime
    os.utime(target / "f2.txt", ns=(1, 1))                  # same content, other mtime
    os.chmod(target / "f3.txt", 0o600)                      # same content, other mode
    (target / "new-here.txt").write_text("not in the snapshot\n")

    plan = repo.plan_restore(snap, str(target))
    assert sorted(plan.overwrite) == ["f1.txt", "f2.txt", "f3.txt"]
    assert sorted(plan.unchanged) == ["f0.txt", "f4.txt", "f5.txt", "f6.txt", "link"]

    operation = {"kind": "restore", "repo": str(tmp_path / "repo"), "snapshot": snap, "target": str(target),
                 "requester": "alice", "target_exists": True, "target_empty": False,
                 "preview": {"create": plan.create, "overwrite": plan.overwrite, "unchanged": plan.unchanged,
                             "bytes": plan.bytes}}
    text = describe(ApprovalRequest.from_operation(operation, "alice", "run-1"))
    assert f"restore snapshot {snap[:8]} from" in text and snap not in text
    assert "- 3 files overwritten: `f1.txt`, `f2.txt`, `f3.txt`" in text
    assert "- 5 existing files already as in the snapshot (not counted)" in text
    assert "overwrites 3 existing files" in text


def test_deleted_snapshots_are_listed_by_short_id():
    sid = "ab" * 32
    operation = {"kind": "delete", "repo": "/r", "snapshots": [sid], "requester": "alice", "bytes_freed": 10}
    text = describe(ApprovalRequest.from_operation(operation, "alice", "run-1"))
    assert f"`{sid[:8]}`" in text and sid not in text


def test_the_request_names_who_may_approve():
    operation = {"kind": "delete", "repo": "/r", "snapshots": ["x"], "requester": "alice", "bytes_freed": 10}
    text = describe(ApprovalRequest.from_operation(operation, "alice", "run-1"), allowed=["bob", "carol"])
    assert "**May approve:** bob, carol (anyone else's answer is refused)" in text
