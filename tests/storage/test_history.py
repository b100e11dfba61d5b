"""A file's history across snapshots (storage/repository/history.py)."""

from __future__ import annotations

from storage import Repository


def test_history_lists_the_snapshots_where_a_file_was_added_changed_or_deleted(tmp_path):
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "other.txt").write_text("other\n")
    repo = Repository.init(str(tmp_path / "repo"))
    before = repo.backup(str(src)).snapshot_id                 # the file does not exist yet
    (src / "lib" / "app.py").write_text("x = 1\n")
    added = repo.backup(str(src)).snapshot_id
    (src / "other.txt").write_text("changed, but not app.py\n")
    repo.backup(str(src))                                      # app.py unchanged: no line
    (src / "lib" / "app.py").write_text("x = 22\n")
    changed = repo.backup(str(src)).snapshot_id
    (src / "lib" / "app.py").unlink()
    deleted = repo.backup(str(src)).snapshot_id
    for path in (str(src / "lib" / "app.py"), "lib/app.py"):
        history = repo.file_history(path)
        assert [(h.snapshot, h.change) for h in history] == [(added, "added"), (changed, "changed"),
                                                             (deleted, "deleted")]
        assert [h.size for h in history] == [6, 7, None]
        assert history[0].sha256 != history[1].sha256 and history[1].path == "lib/app.py"
    assert before not in {h.snapshot for h in repo.file_history("lib/app.py")}
    assert repo.file_history(str(tmp_path / "elsewhere" / "app.py")) == []
    assert repo.file_history("../outside") == []
