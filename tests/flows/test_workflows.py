"""What a backup carries besides the workspace (issue 14): with include_workflows, an export of
backupflow's Prefect deployments, schedules and automations, without secrets, that
`backupflow workflows restore` puts back; with include_versions, the mark that the repository's
version history comes with the snapshot."""

from __future__ import annotations

import json

from prefect import get_client
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from tests.flows.cli_process import cli_env, run
from tests.seed_config import seed_config
from tests.suite_password import open_repository

SECRET = "wJalrXUtnFEMI-not-for-export"


def _deployment(repo: str):
    from flows import verify_flow

    return verify_flow.to_deployment(name="workflows-test-verify", cron="17 3 * * 2", tags=["backupflow"],
                                     parameters={"repo": repo, "read_data": True,
                                                 "options": {"region": "eu", "secret_access_key": SECRET}})


def test_a_backup_carries_the_workflows_and_restore_puts_them_back(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    repo = str(tmp_path / "repo")
    deployment_id = _deployment(repo).apply()
    automation = AutomationCore(name="backupflow test: a verify failed", trigger=EventTrigger(
        expect={"prefect.flow-run.Failed"}, posture=Posture.Reactive, threshold=1), actions=[DoNothing()])
    with get_client(sync_client=True) as client:
        client.create_automation(automation)
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, include_workflows="true"))
    out = run(["backup", "src", "--repo", repo, "--json"], env, tmp_path).json()
    assert out["workflows"]["deployments"] >= 1 and out["workflows"]["automations"] >= 1
    assert "bf:workflows" in open_repository(repo).snapshot("latest").tags

    shown = run(["workflows", "show", "latest", "--repo", repo, "--json"], env, tmp_path)
    export = shown.json()
    mine = [d for d in export["deployments"] if d["name"] == "workflows-test-verify"]
    assert mine and mine[0]["schedules"][0]["schedule"]["cron"] == "17 3 * * 2"
    assert mine[0]["parameters"]["options"] == {"region": "eu"}, "a secret travelled with the export"
    assert SECRET not in shown.stdout and SECRET.encode() not in b"".join(
        p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file())

    with get_client(sync_client=True) as client:  # the server loses them
        client.delete_deployment(deployment_id)
        for old in client.read_automations_by_name(automation.name):
            client.delete_automation(old.id)
    back = run(["workflows", "restore", "latest", "--repo", repo, "--json"], env, tmp_path).json()
    assert "verify/workflows-test-verify" in back["deployments"] and automation.name in back["automations"]
    with get_client(sync_client=True) as client:
        again = client.read_deployment_by_name("verify/workflows-test-verify")
        assert again.schedules[0].schedule.cron == "17 3 * * 2"
        assert again.parameters == {"repo": repo, "read_data": True, "options": {"region": "eu"}}
        assert [a.name for a in client.read_automations_by_name(automation.name)] == [automation.name]
        client.delete_deployment(again.id)


def test_include_versions_marks_a_snapshot_of_a_repository_with_version_history(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    repo = str(tmp_path / "repo")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path))  # include_versions = true
    run(["backup", "src", "--repo", repo], env, tmp_path).ok()
    assert open_repository(repo).snapshot("latest").tags == [], "no history yet: nothing to carry"
    open_repository(repo).versions().create_version("notes.md", b"first draft\n", author="ada")
    run(["backup", "src", "--repo", repo], env, tmp_path).ok()
    assert open_repository(repo).snapshot("latest").tags == ["bf:versions"]
    off = seed_config(tmp_path, include_versions="false")
    run(["backup", "src", "--repo", repo, "--config", off], env, tmp_path).ok()
    assert open_repository(repo).snapshot("latest").tags == []
    no_workflows = run(["workflows", "show", "latest", "--repo", repo], env, tmp_path).one_sentence_error()
    assert "carries no workflows export" in no_workflows and json.dumps(no_workflows)
