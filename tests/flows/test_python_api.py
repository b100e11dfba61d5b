"""The Python API of issue 15, run as users wrote it: the issue's snippets, unchanged but for the
import line (``app.storage`` -> ``backupflow``) and the paths (a temporary workspace), against a
real repository and the test session's Prefect server."""

from __future__ import annotations

import textwrap
import uuid

import pytest
from prefect import get_client

from tests.suite_password import open_repository

# The issue's snippet, block by block. Only the import lines and the /workspace/ paths differ.
GUARDIAN = '''
from backupflow import get_backup_manager, get_versioning_engine, get_guardian
backup_manager = get_backup_manager(); versioning = get_versioning_engine(); guardian = get_guardian()

def approval_callback(request):                        # display a dialog; True approves
    return user_approves(request)
guardian.set_approval_callback(approval_callback)
guardian.set_auto_approve(True)                        # for testing only
'''

BACKUPS = '''
metadata = backup_manager.create_backup(backup_type="full", description="Pre-release backup",
                                        tags=["release-1.0", "important"], include_versions=True)
backup_manager.create_backup(backup_type="incremental")
backup_manager.create_backup(backup_type="differential")
success = backup_manager.restore_backup(backup_id=metadata.backup_id, require_approval=True)
backup_manager.schedule_backup(schedule_type="cron", schedule_config={"hour": 2, "minute": 0},
                               backup_config={"backup_type": "full", "include_versions": True})
archived_count = backup_manager.archive_old_backups(days_threshold=30, keep_count=10)
deleted_count = backup_manager.cleanup_old_backups(retention_days=90)
backup_stats = backup_manager.get_backup_stats()      # ['total_backups'], ['total_size_bytes']
metadata = backup_manager.get_backup(backup_id)        # None when there is none
'''

VERSIONS = '''
version = versioning.create_version(file_path="{ws}/main.py", content=b"print('Hello, World!')",
                                    author="developer", message="Initial implementation")
versioning.tag_version(file_path="{ws}/main.py", version_id=version.version_id, tag="v1.0")
versions = versioning.get_versions("{ws}/app.py")
latest = versioning.get_latest_version("{ws}/app.py")
diff = versioning.diff_versions(versions[0], versions[1])
v1 = versioning.create_version("/file1.txt", b"Hello"); v2 = versioning.create_version("/file2.txt", b"Hello")
assert v1.content_hash == v2.content_hash               # same content, stored once
version_stats = versioning.get_storage_stats()         # ['total_files'], ['total_versions'], ['total_objects']
'''

AUDIT = '''
from backupflow import audit_logger
from backupflow.audit import AuditEventType
events = audit_logger.get_events(event_type=AuditEventType.BACKUP_COMPLETED, user="developer", limit=10)
summary = audit_logger.get_event_summary()
print(f"Total backups: {summary.get('backup_completed', 0)}")
'''


@pytest.fixture
def workspace(prefect_server, tmp_path, monkeypatch):
    """A configured source and repository, an audit directory, and the user 'developer'."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "main.py").write_text("print('hi')\n")
    (ws / "data.bin").write_bytes(bytes(range(256)) * 400)
    repo = tmp_path / "repo"
    config = tmp_path / "config.toml"
    config.write_text(f'[backup]\nbackup_path = "{repo}"\nsource = "{ws}"\narchive_path = "{tmp_path / "archive"}"\n')
    monkeypatch.setenv("BACKUPFLOW_CONFIG", str(config))
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    monkeypatch.delenv("BACKUPFLOW_REPO", raising=False)
    for var in ("USER", "LOGNAME"):
        monkeypatch.setenv(var, "developer")
    monkeypatch.chdir(tmp_path)
    yield ws, repo
    from flows.approvals import get_guardian
    get_guardian().set_approval_callback(None)
    get_guardian().set_auto_approve(False)


def _run(block: str, scope: dict, ws) -> None:
    exec(textwrap.dedent(block).replace("{ws}", str(ws)), scope)


def test_the_issues_snippets_run_against_the_real_engine_and_server(workspace, capsys):
    ws, repo = workspace
    asked: list[dict] = []
    scope: dict = {"user_approves": lambda request: asked.append(request) or True}
    _run(GUARDIAN, scope, ws)

    # The backup part: three real flow runs, a restore through Guardian, a schedule on the server.
    scope["backup_id"] = "latest"
    # app.py has two versions already: the snippet lists and diffs them, and the backups carry them
    scope["versioning"].create_version(f"{ws}/app.py", b"x = 1\n", author="developer", message="one")
    scope["versioning"].create_version(f"{ws}/app.py", b"x = 2\n", author="developer", message="two")
    _run(BACKUPS, scope, ws)
    manager = scope["backup_manager"]
    full = manager.list_backups()[0]
    assert (full.backup_type, full.description) == ("full", "Pre-release backup")
    assert full.tags == ["release-1.0", "important"]
    assert full.include_versions is True and full.files == 2 and full.size == 256 * 400 + len("print('hi')\n")
    assert scope["success"] is True and len(asked) == 1 and asked[0]["operation"]["kind"] == "restore"
    assert (ws / "main.py").read_text() == "print('hi')\n"
    with open_repository(str(repo)) as r:
        assert sorted(s.type for s in r.snapshots.all()) == ["differential", "full", "incremental"]
    assert scope["backup_stats"]["total_backups"] == 3 and scope["backup_stats"]["total_size_bytes"] > 0
    assert scope["metadata"].backup_type == "differential"  # get_backup("latest")
    assert manager.get_backup("f" * 64) is None
    assert (scope["archived_count"], scope["deleted_count"]) == (0, 0)  # all three are new
    schedules = {s["name"]: s for s in manager.list_schedules()}
    assert schedules["python-full"]["schedules"][0]["cron"] == "0 2 * * *"
    assert schedules["python-full"]["parameters"]["type"] == "full"
    manager.remove_schedule("python-full")
    assert "python-full" not in {s["name"] for s in manager.list_schedules()}

    # The versioning part (app.py's two versions were made before the backups).
    _run(VERSIONS, scope, ws)
    assert "-x = 1\n+x = 2\n" in scope["diff"]
    assert scope["latest"].message == "two" and [v.number for v in scope["versions"]] == [1, 2]
    assert scope["versioning"].get_version(f"{ws}/main.py", "v1.0").author == "developer"
    (ws / "app.py").write_text("x = 3\n")  # restoring version 1 over it asks Guardian (the callback approves)
    assert scope["versioning"].restore_version(f"{ws}/app.py", "1") is True
    assert (ws / "app.py").read_text() == "x = 1\n" and asked[-1]["operation"]["target"] == f"{ws}/app.py"
    stats = scope["version_stats"]
    assert (stats["total_files"], stats["total_versions"], stats["total_objects"]) == (4, 5, 4)

    # The audit part: three completed backups by 'developer', counted under the snippet's key.
    _run(AUDIT, scope, ws)
    assert scope["summary"]["archive_completed"] == 1 and scope["summary"]["cleanup_completed"] == 1
    assert len(scope["events"]) == 3
    assert scope["summary"]["backup_completed"] == 3 and scope["summary"]["by_type"]["backup.completed"] == 3
    assert "Total backups: 3" in capsys.readouterr().out
    with get_client(sync_client=True) as client:  # each backup was a real flow run, Completed
        for event in scope["events"]:
            assert client.read_flow_run(uuid.UUID(event["flow_run_id"])).state.is_completed()


def test_restores_are_true_or_false_and_old_backups_are_archived_and_cleaned_up_with_counts(workspace, tmp_path):
    from backupflow import get_backup_manager, get_guardian, get_versioning_engine

    manager = get_backup_manager()
    ws, repo = workspace
    get_versioning_engine().create_version(f"{ws}/main.py", b"print('v1')\n", author="ann", message="kept")
    chains = []
    for n in range(3):  # three chains of one full each
        (ws / "main.py").write_text(f"print({n})\n")
        chains.append(manager.create_backup(backup_type="full").backup_id)
    # A rejected restore returns False and writes nothing; an approved one restores.
    get_guardian().set_approval_callback(lambda request: False)
    assert manager.restore_backup(backup_id=chains[0], require_approval=True) is False
    assert (ws / "main.py").read_text() == "print(2)\n"
    get_guardian().set_approval_callback(lambda request: True)
    assert manager.restore_backup(backup_id=chains[0][:12], require_approval=True) is True
    assert (ws / "main.py").read_text() == "print(0)\n"
    # Restored elsewhere, a backup that carries versions brings the files' history along.
    assert manager.restore_backup(backup_id=chains[1], target_path=str(tmp_path / "moved")) is True
    moved = get_versioning_engine().get_versions(str(tmp_path / "moved" / "main.py"))
    assert [(v.author, v.message) for v in moved] == [("ann", "kept")]
    assert manager.archive_old_backups(days_threshold=0, keep_count=2) == 1  # the oldest goes to the archive
    # (".tar.gz.age" from an encrypted repository: README, Archive)
    assert manager.get_backup(chains[0]) is None and len(list((tmp_path / "archive").rglob("*.tar.gz*"))) == 1
    get_guardian().set_approval_callback(lambda request: request["operation"]["kind"] == "cleanup")
    assert manager.cleanup_old_backups(retention_days=0, keep_minimum_count=1) == 1
    assert [m.backup_id for m in manager.list_backups()] == [chains[2]]


def test_interval_schedules_and_bad_schedules(workspace):
    from backupflow import get_backup_manager
    from storage.errors import InvalidInput, NotFound

    manager = get_backup_manager()
    name = manager.schedule_backup("interval", {"hours": 6}, {"backup_type": "incremental"}, name="every-6h")
    found = {s["name"]: s for s in manager.list_schedules()}[name]
    assert found["schedules"] == [{"interval_seconds": 6 * 3600}] and found["parameters"]["type"] == "incremental"
    manager.schedule_backup("interval", {"minutes": 30}, {"backup_type": "incremental"}, name="every-6h")  # updates
    found = {s["name"]: s for s in manager.list_schedules()}[name]
    assert found["schedules"] == [{"interval_seconds": 1800}]
    manager.remove_schedule(name)
    with pytest.raises(NotFound, match="no backup schedule named 'every-6h'"):
        manager.remove_schedule(name)
    with pytest.raises(InvalidInput, match="cron schedule takes"):
        manager.schedule_backup("cron", {"hours": 2})
    with pytest.raises(InvalidInput, match="interval schedule takes"):
        manager.schedule_backup("interval", {"hours": 0})
    with pytest.raises(InvalidInput, match="'cron' or 'interval'"):
        manager.schedule_backup("weekly", {"hour": 2})
