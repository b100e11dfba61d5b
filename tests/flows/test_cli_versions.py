"""`backupflow history` and `backupflow versions ...` as users run them (a subprocess each)."""

from __future__ import annotations

import os

from storage import Repository
from tests.flows.cli_process import run


def _env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPFLOW_") or k.startswith("BACKUPFLOW_RUNNER_")}
    env.update(BACKUPFLOW_REPO=str(tmp_path / "repo"), BACKUPFLOW_AUDIT_PATH=str(tmp_path / "audit"))
    env.pop("PREFECT_API_URL", None)  # none of these commands runs a flow
    return env


def test_versions_add_list_tag_show_diff_restore_and_history(tmp_path):
    env, work = _env(tmp_path), tmp_path
    src = tmp_path / "src"
    src.mkdir()
    app = src / "app.py"
    app.write_text("x = 1\n")
    repo = Repository.init(str(tmp_path / "repo"))
    first_snap = repo.backup(str(src)).snapshot_id
    first = repo.versions().create_version(str(app), b"x = 1\n", author="ann", message="first").to_dict()
    app.write_text("x = 2\n")
    second = run(["versions", "add", str(app), "-m", "second", "--tag", "v2", "--json"], env, work).json()
    assert second["parent_id"] == first["version_id"] and second["tags"] == ["v2"]
    second_snap = repo.backup(str(src)).snapshot_id

    listed = run(["versions", "list", str(app), "--json"], env, work).json()["versions"]
    assert [v["message"] for v in listed] == ["first", "second"] and listed[0]["author"] == "ann"
    run(["versions", "tag", str(app), first["version_id"], "v1"], env, work).ok()
    assert repo.versions().get_version(str(app), "v1").version_id == first["version_id"]
    assert run(["versions", "show", str(app), "v1", "--content"], env, work).ok().stdout == "x = 1\n"
    diff = run(["versions", "diff", str(app), "v1"], env, work).ok().stdout
    assert "-x = 1\n+x = 2\n" in diff

    history = run(["history", str(app), "--json"], env, work).json()
    assert [(s["snapshot"], s["change"]) for s in history["snapshots"]] == [(first_snap, "added"),
                                                                             (second_snap, "changed")]
    assert [v["version_id"] for v in history["versions"]] == [first["version_id"], second["version_id"]]
    table = run(["history", "app.py"], env, work).ok().stdout  # a path inside the snapshots
    assert first_snap[:8] in table and second_snap[:8] in table and "changed" in table

    # Over a file with other content: Guardian asks, and with nobody to answer it is rejected.
    refused = run(["versions", "restore", str(app), "v1"], env, work)
    assert refused.returncode == 11 and "not approved" in refused.one_sentence_error()
    assert app.read_text() == "x = 2\n"
    run(["versions", "restore", str(app), "v1", "--to", str(tmp_path / "copy.py")], env, work).ok()
    assert (tmp_path / "copy.py").read_text() == "x = 1\n"


def test_unknown_files_versions_and_tags_are_one_sentence_errors(tmp_path):
    env, work = _env(tmp_path), tmp_path
    Repository.init(str(tmp_path / "repo")).close()
    (tmp_path / "f.txt").write_text("f\n")
    missing = run(["versions", "add", str(tmp_path / "nope.txt")], env, work)
    assert missing.returncode == 2 and "Cannot read" in missing.one_sentence_error()
    assert run(["versions", "list", str(tmp_path / "f.txt")], env, work).returncode == 3
    with Repository.open(str(tmp_path / "repo")) as repo:
        repo.versions().create_version(str(tmp_path / "f.txt"), b"f\n")
    bad = run(["versions", "show", str(tmp_path / "f.txt"), "v9"], env, work)
    assert bad.returncode == 3 and "has no version 'v9'" in bad.one_sentence_error()
    nothing = run(["history", str(tmp_path / "f2.txt")], env, work)
    assert nothing.returncode == 3 and "No snapshot and no version" in nothing.one_sentence_error()


def test_versions_of_an_encrypted_repository_need_its_password(tmp_path):
    env, work = _env(tmp_path), tmp_path
    with Repository.init(str(tmp_path / "repo"), password="pw-for-versions") as repo:
        repo.versions().create_version(str(tmp_path / "s.txt"), b"secret\n", message="sealed")
    with_password = {**env, "BACKUPFLOW_PASSWORD": "pw-for-versions"}
    listed = run(["versions", "list", str(tmp_path / "s.txt"), "--json"], with_password, work).json()["versions"]
    assert [v["message"] for v in listed] == ["sealed"]
    assert run(["versions", "list", str(tmp_path / "s.txt")], env, work).returncode == 16
