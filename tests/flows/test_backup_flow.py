"""The backup flow from Python, against the real test Prefect server: summary, run state, artifact."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from storage import Repository
from storage.errors import InvalidInput
from tests.treegen import assert_same_tree, make_tree
from tests.suite_password import open_repository


@pytest.fixture
def flow_env(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    monkeypatch.chdir(tmp_path)  # no ./config/config.toml from the checkout
    return prefect_server


def _artifacts(flow_run_id: str, key: str):
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))


def test_backup_flow_returns_summary_and_publishes_report(flow_env, tmp_path):
    from flows import backup_flow

    tree = make_tree(tmp_path / "src", seed=31)
    repo = str(tmp_path / "repo")
    summary = backup_flow(source=str(tree.root), repo=repo)
    assert summary["type"] == "full" and len(summary["snapshot_id"]) == 64
    assert summary["flow_run_id"] and summary["duration_seconds"] > 0
    assert summary["stats"]["files"] == len(tree.files) + 3 and summary["stats"]["bytes_read"] > 0

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(summary["flow_run_id"]))
    assert run.state.is_completed()
    assert run.parameters["source"] == str(tree.root)

    arts = _artifacts(summary["flow_run_id"], "backup-report")
    assert len(arts) == 1
    row = arts[0].data if isinstance(arts[0].data, list) else json.loads(arts[0].data)
    assert row[0]["snapshot"] == summary["snapshot_id"][:8] and row[0]["type"] == "full"
    assert row[0]["files"] == summary["stats"]["files"]
    for key in ("bytes read", "bytes added", "dedup ratio", "compression ratio", "duration s"):
        assert key in row[0]

    second = backup_flow(source=str(tree.root), repo=repo, tags=["from-python"])
    assert second["type"] == "incremental" and second["stats"]["bytes_read"] == 0
    open_repository(repo).restore(second["snapshot_id"], str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")


def test_failed_backup_flow_leaves_no_snapshot(flow_env, tmp_path):
    from flows import backup_flow

    repo = str(tmp_path / "repo")
    Repository.init(repo)
    with pytest.raises(InvalidInput, match="does not exist"):
        backup_flow(source=str(tmp_path / "missing"), repo=repo)
    assert open_repository(repo).snapshots.all() == []


def test_plain_parameters_are_stored_as_given_and_anything_else_still_serialises():
    from pathlib import PurePosixPath

    from flows import backup_flow

    plain = {"source": "/src", "repo": "s3://bucket/r", "excludes": ["*.log"], "options": {"region": "x"},
             "connections": None, "compression_level": 3}
    assert backup_flow.serialize_parameters(plain) == plain
    # not plain JSON: Prefect's own encoder takes it, as for any flow
    odd = backup_flow.serialize_parameters({"source": PurePosixPath("/src"), "tags": {"a"}})
    assert odd == {"source": "/src", "tags": ["a"]}


def test_in_process_runs_turn_the_heartbeat_off_and_restore_the_settings_after():
    # A heartbeat thread makes each sync run wait up to a second at exit (a CLI run's budget).
    from prefect.settings import get_current_settings

    from flows.runtime import in_process_run

    before = get_current_settings()
    assert before.flows.heartbeat_frequency is not None
    with in_process_run():
        inside = get_current_settings()
        assert inside.flows.heartbeat_frequency is None
        assert inside.api.url == before.api.url  # everything else as it was
    assert get_current_settings().flows.heartbeat_frequency == before.flows.heartbeat_frequency


def test_backup_flow_from_python_refuses_a_source_path_that_is_not_utf8(flow_env, tmp_path):
    from flows import backup_flow

    src = os.fsencode(tmp_path) + b"/src\xff"
    os.mkdir(src)
    with pytest.raises(InvalidInput, match=r"The source .*src\\xff is not valid UTF-8"):
        backup_flow(source=os.fsdecode(src), repo=str(tmp_path / "repo"))
    assert not (tmp_path / "repo").exists()
