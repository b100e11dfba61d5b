"""Through the installed ``backupflow`` command: a tree with names that are not UTF-8, a sparse
file and a log being written to; and a tree with things the backup may not read (and a subtree
deeper than PATH_MAX), which ends as an incomplete snapshot with its own exit code, named in
--json, the report and the audit."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import uuid

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from storage.errors import IncompleteSnapshot
from tests.flows.cli_process import BACKUPFLOW, Result, cli_env, run
from tests.storage.test_backup_hard_cases import DEEP, make_deep_tree, make_unreadable_tree, without_read_override
from tests.suite_password import open_repository

SPARSE = 1 << 30


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_cli_backs_up_odd_names_a_sparse_file_and_a_growing_log(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bsrc = os.fsencode(src)
    with open(bsrc + b"/bad\xff", "wb") as f:
        f.write(b"latin-1 named\n")
    with open(src / "disk.img", "wb") as f:
        f.truncate(SPARSE)
        f.write(b"boot sector")
    log = src / "active.log"
    log.write_bytes(os.urandom(16 << 20))
    env = cli_env(prefect_server, tmp_path)
    repo = str(tmp_path / "repo")

    stop = threading.Event()

    def append() -> None:  # a process writing its log all through the backup
        with open(log, "ab") as f:
            while not stop.wait(0.001):
                f.write(b"a log line\n")
                f.flush()

    writer = threading.Thread(target=append)
    writer.start()
    try:
        out = run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()
    finally:
        stop.set()
        writer.join()
    assert out["incomplete"] == [] and out["files"] == 3
    snap = open_repository(repo).snapshot(out["snapshot_id"])
    entry = {e["path"]: e for e in snap.tree}
    assert "active.log" in entry, "a log being written to must be backed up, not dropped"
    if entry["active.log"].get("changed_while_read"):
        assert out["warnings"] >= 1  # --json gives the stats' count; the text is on stderr without it

    ls = run(["ls", "latest", "-r", repo], env, tmp_path).ok()
    assert "bad\\xff" in ls.stdout and "disk.img" in ls.stdout
    listed = run(["ls", "latest", "-r", repo, "--json"], env, tmp_path).json()
    assert "bad\udcff" in {e["path"] for e in listed["entries"]}
    with open(bsrc + b"/bad\xff", "ab") as f:
        f.write(b"edited\n")
    run(["backup", str(src), "-r", repo, "--json"], env, tmp_path).json()
    diff = run(["diff", out["snapshot_id"], "latest", "-r", repo], env, tmp_path).ok()
    assert "M bad\\xff" in diff.stdout

    target = tmp_path / "restored"
    run(["restore", out["snapshot_id"], str(target), "-r", repo], env, tmp_path).ok()
    assert open(os.fsencode(target) + b"/bad\xff", "rb").read() == b"latin-1 named\n"
    assert os.path.getsize(target / "disk.img") == SPARSE
    assert _sha256(target / "disk.img") == entry["disk.img"]["sha256"]
    size = entry["active.log"]["size"]
    assert (target / "active.log").read_bytes() == log.read_bytes()[:size]


def _artifact_rows(flow_run_id: str) -> list[dict]:
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["backup-report"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
    assert len(arts) == 1
    return arts[0].data if isinstance(arts[0].data, list) else json.loads(arts[0].data)


def test_cli_incomplete_snapshot_exits_14_and_names_what_is_missing(prefect_server, tmp_path):
    src = make_unreadable_tree(tmp_path)
    make_deep_tree(src)
    # In its own process: a resident runner started earlier with every privilege would read
    # what this command may not.
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_RUNNER="off")
    repo = str(tmp_path / "repo")
    proc = subprocess.run([*without_read_override(), BACKUPFLOW, "backup", str(src), "-r", repo, "--json"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    res = Result(["backup"], proc.returncode, proc.stdout, proc.stderr)
    assert res.returncode == IncompleteSnapshot.exit_code == 14, res.stderr
    [line] = [x for x in res.stderr.splitlines() if x.strip()]
    assert line.startswith("backupflow: snapshot ") and "incomplete: 3 item(s) could not be read" in line
    out = json.loads(res.stdout)
    reasons = {m["path"].split("/")[0]: m["reason"] for m in out["incomplete"]}
    assert reasons == {"locked": "Permission denied", "secret.txt": "Permission denied",
                       DEEP: "its path is longer than the system allows (PATH_MAX)"}
    assert out["missing"] == 3  # the stats, spread at the top level as for every backup

    snap = open_repository(repo).snapshot("latest")  # what could be read is saved
    assert snap.id == out["snapshot_id"] and {"open.txt", "locked", DEEP} <= {e["path"] for e in snap.tree}
    assert _artifact_rows(out["flow_run_id"])[0]["not backed up"] == 3
    with get_client(sync_client=True) as client:  # the UI's run list says so
        state = client.read_flow_run(uuid.UUID(out["flow_run_id"])).state
    assert state.is_completed() and state.name == "Incomplete"
    events = [json.loads(line) for f in sorted((tmp_path / "audit").glob("*.jsonl")) for line in f.open()]
    [done] = [e for e in events if e["type"] == "backup.completed"]
    assert done["outcome"] == "incomplete"
    assert {m["path"].split("/")[0] for m in done["details"]["incomplete"]} == {"locked", "secret.txt", DEEP}

    plain = subprocess.run([*without_read_override(), BACKUPFLOW, "backup", str(src), "-r", repo],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 14 and "Traceback" not in plain.stderr
    assert "warning: secret.txt could not be read (Permission denied)" in plain.stderr


def test_cli_refuses_a_source_path_that_is_not_utf8_in_one_sentence(prefect_server, tmp_path):
    src = os.fsencode(tmp_path) + b"/src\xff"
    os.mkdir(src)
    with open(src + b"/inside.txt", "wb") as f:
        f.write(b"x")
    env = cli_env(prefect_server, tmp_path)
    res = run(["backup", os.fsdecode(src), "-r", str(tmp_path / "repo")], env, tmp_path)
    line = res.one_sentence_error()
    assert res.returncode == 2 and "src\\xff is not valid UTF-8" in line and "back up a folder above it" in line
    # ... and the folder above it backs up, the odd name inside exactly.
    out = run(["backup", str(tmp_path), "-r", str(tmp_path / "repo"), "--json", "-e", "repo"], env, tmp_path).json()
    tree = open_repository(str(tmp_path / "repo")).snapshot(out["snapshot_id"]).tree
    assert "src\udcff/inside.txt" in {e["path"] for e in tree}


def test_cli_incomplete_snapshot_through_the_resident_runner_keeps_its_exit_code(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "top.txt").write_text("top\n")
    make_deep_tree(src)  # unreadable whatever the privileges: deeper than PATH_MAX
    env = cli_env(prefect_server, tmp_path)
    res = run(["backup", str(src), "-r", str(tmp_path / "repo"), "--json"], env, tmp_path)
    assert res.returncode == 14, res.stderr
    assert "incomplete: 1 item(s) could not be read" in res.stderr and "Traceback" not in res.stderr
    out = json.loads(res.stdout)
    assert out["files"] == 1 and [m["path"].split("/")[0] for m in out["incomplete"]] == [DEEP]
