"""The panel's actions as typed deployments (flows/panel.py, issue 16): the server's form
schema has a dropdown for the backup type, lists for tags, excludes and include paths, and help
text for every parameter; a value the types refuse never becomes a run; the actions work and
their errors name parameters, not command-line flags."""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.exceptions import PrefectHTTPStatusError

from deployments.definition import all_jobs
from deployments.serve import build
from storage.config import BackupSettings
from storage.errors import InvalidInput


@pytest.fixture
def panel_env(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_AUDIT_PATH", str(tmp_path / "audit"))
    monkeypatch.chdir(tmp_path)  # no ./config/config.toml from the checkout
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("a" * 1000)
    (src / "b.log").write_text("log\n")
    return src, str(tmp_path / "repo")


def test_the_forms_are_typed_and_explain_themselves_and_refuse_bad_values(panel_env):
    src, repo = panel_env
    ids = {dep.flow_name: dep.apply() for dep in build(all_jobs(BackupSettings()), str(src), repo)
           if dep.name == "panel"}
    with get_client(sync_client=True) as client:
        schema = client.read_deployment(ids["create-backup"]).parameter_openapi_schema
        props = schema["properties"]
        assert props["type"]["enum"] == ["auto", "full", "incremental", "differential"]
        assert props["tags"]["type"] == props["excludes"]["type"] == "array"
        assert "starts a new chain" in props["type"]["description"]
        archive = client.read_deployment(ids["archive-old-backups"])
        assert archive.parameter_openapi_schema["properties"]["older_than_days"]["minimum"] == 1
        assert archive.parameters == {"repo": repo, "older_than_days": 30, "keep": 10}
        with pytest.raises(PrefectHTTPStatusError):
            client.create_flow_run_from_deployment(archive.id, parameters={"older_than_days": 0})
        for flow_name in ("create-backup", "restore-snapshot", "preview-diff", "verify-now", "archive-old-backups"):
            props = client.read_deployment(ids[flow_name]).parameter_openapi_schema["properties"]
            assert all(p.get("description") for p in props.values()), (flow_name, props)
        restore = client.read_deployment(ids["restore-snapshot"]).parameter_openapi_schema
        assert restore["properties"]["include"]["type"] == "array" and "target" in restore["required"]
        with pytest.raises(PrefectHTTPStatusError) as refused:
            client.create_flow_run_from_deployment(ids["create-backup"], parameters={"type": "fulll"})
        assert refused.value.response.status_code == 409 and "fulll" in refused.value.response.text
        good = client.create_flow_run_from_deployment(ids["create-backup"], parameters={"type": "full"})
        assert good.parameters == {"source": str(src), "repo": repo, "type": "full"}
        client.delete_flow_run(good.id)  # nobody serves it here


def _markdown(flow_run_id) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))])))
    return "\n".join(a.data for a in found if a.type == "markdown")


def test_backup_preview_diff_restore_and_verify_from_the_panel(panel_env, tmp_path):
    from flows.panel import (archive_old_backups_flow, create_backup_flow, preview_diff_flow, restore_snapshot_flow,
                             verify_now_flow)

    src, repo = panel_env
    with pytest.raises(InvalidInput, match="run one with the parameter type full first"):
        create_backup_flow(source=str(src), repo=repo, type="incremental")
    first = create_backup_flow(source=str(src), repo=repo, type="auto", tags=["panel"], excludes=["*.log"],
                               description="from the form")
    assert first["type"] == "full" and first["stats"]["files"] == 1  # b.log left out
    (src / "docs" / "a.txt").write_text("a" * 3000)
    (src / "new.txt").write_text("n" * 10)
    state = preview_diff_flow(repo=repo, return_state=True)
    diff = state.result()
    assert diff["added"] == [["b.log", 4], ["new.txt", 10]] and diff["changed"] == [["docs/a.txt", 1000, 3000]]
    text = _markdown(state.state_details.flow_run_id)
    assert "### Added (2)" in text and "`new.txt` | 10 B" in text and "### Changed (1)" in text
    second = create_backup_flow(source=str(src), repo=repo, excludes=["*.log"])
    assert second["type"] == "incremental"
    between = preview_diff_flow(repo=repo, snapshot=first["snapshot_id"][:8], compare_with="latest")
    assert between["added"] == [["new.txt", 10]] and between["removed"] == []
    restored = restore_snapshot_flow(target=str(tmp_path / "back"), repo=repo, snapshot=first["snapshot_id"],
                                     include=["docs"])
    assert restored["files"] == 1 and (tmp_path / "back" / "docs" / "a.txt").read_text() == "a" * 1000
    assert verify_now_flow(repo=repo)["ok"] is True
    plan = archive_old_backups_flow(repo=repo, older_than_days=1, keep=0, to=str(tmp_path / "archive"), dry_run=True)
    assert plan["dry_run"] is True and plan["snapshots"] == []  # nothing is a day old yet
