"""End to end through the installed `backupflow` command against the real test Prefect server,
on an awkward generated tree that includes a file over 64 MiB."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.flows.cli_process import cli_env, run
from tests.treegen import BIG_FILE, assert_same_tree, fingerprint, make_tree, mutate
from tests.suite_password import open_repository

BACKUP_KEYS = {"snapshot_id", "type", "flow_run_id", "files", "bytes_read", "bytes_added", "dedup_ratio",
               "compression_ratio", "duration_seconds"}


@pytest.fixture(scope="module")
def e2e(prefect_server, tmp_path_factory):
    """Two backups through the CLI: a full of the tree, then an incremental after a mutation."""
    work = tmp_path_factory.mktemp("e2e")
    env = cli_env(prefect_server, work)
    tree = make_tree(work / "src", seed=42, big=True)
    repo = str(work / "repo")
    first = run(["backup", str(tree.root), "--repo", repo, "--json"], env, work).json()
    fp_first = fingerprint(tree.root)
    changed = mutate(tree)
    second = run(["backup", str(tree.root), "-r", repo, "--json", "--tag", "after-edit"], env, work).json()
    return {"work": work, "env": env, "tree": tree, "repo": repo, "first": first, "second": second,
            "fp_first": fp_first, "changed": changed}


def cli(e2e, *args: str):
    return run(list(args), e2e["env"], e2e["work"])


def test_backup_json_reports_the_run(e2e):
    first, second = e2e["first"], e2e["second"]
    for out in (first, second):
        assert BACKUP_KEYS <= set(out), BACKUP_KEYS - set(out)
        assert len(out["snapshot_id"]) == 64 and len(out["flow_run_id"]) == 36
    assert first["type"] == "full" and second["type"] == "incremental"
    big = os.path.getsize(e2e["tree"].root / BIG_FILE)
    assert first["bytes_read"] > big > 64 * 1024 * 1024
    assert first["bytes_added"] > big * 0.9           # random content does not compress
    assert first["files"] == second["files"]           # one file added, one removed
    # the incremental read only what changed, not the 64 MiB file
    assert 0 < second["bytes_read"] < 3 * 1024 * 1024
    assert second["bytes_added"] < 1024 * 1024
    assert first["flow_run_id"] != second["flow_run_id"]


def test_snapshots_lists_both_quickly(e2e):
    started = time.monotonic()
    out = cli(e2e, "snapshots", "-r", e2e["repo"], "--json").json()
    elapsed = time.monotonic() - started
    ids = [s["id"] for s in out["snapshots"]]
    assert ids == [e2e["first"]["snapshot_id"], e2e["second"]["snapshot_id"]]
    assert out["snapshots"][1]["tags"] == ["after-edit"]
    assert out["snapshots"][1]["parent"] == ids[0]
    assert elapsed < 5, f"`backupflow snapshots` took {elapsed:.1f} s; read-only commands must answer in about 2 s"
    table = run(["snapshots", "-r", e2e["repo"]], {**e2e["env"], "COLUMNS": "250"}, e2e["work"]).ok()
    assert ids[0][:8] in table.stdout and "incremental" in table.stdout


def test_ls_lists_every_path_with_odd_names(e2e):
    out = cli(e2e, "ls", e2e["first"]["snapshot_id"][:10], "-r", e2e["repo"], "--json").json()
    listed = {e["path"]: e for e in out["entries"]}
    assert set(listed) == set(e2e["fp_first"].entries)
    assert listed["link-dangling"]["target"] == "does/not/exist"
    assert listed[BIG_FILE]["size"] > 64 * 1024 * 1024
    plain = cli(e2e, "ls", "latest", "odd folder ü", "-r", e2e["repo"]).ok()
    assert "odd folder ü/-rf" in plain.stdout and "naïve café.md" in plain.stdout
    assert "media/" not in plain.stdout


def test_diff_names_what_changed(e2e):
    d = cli(e2e, "diff", e2e["first"]["snapshot_id"], "latest", "-r", e2e["repo"], "--json").json()
    changed = e2e["changed"]
    assert set(changed["added"]) <= set(d["added"])
    assert d["removed"] == changed["removed"]
    assert set(changed["modified"]) <= set(d["modified"])
    assert BIG_FILE not in d["modified"]
    text = cli(e2e, "diff", e2e["first"]["snapshot_id"][:8], "latest", "-r", e2e["repo"]).ok().stdout
    assert "- -rf" in text and "+ new folder/new file ü.txt" in text


def test_restore_latest_and_older_snapshot_byte_for_byte(e2e):
    work = e2e["work"]
    out = cli(e2e, "restore", "latest", str(work / "latest"), "-r", e2e["repo"], "--json").json()
    assert out["snapshot_id"] == e2e["second"]["snapshot_id"] and out["flow_run_id"]
    assert_same_tree(e2e["tree"].root, work / "latest")
    cli(e2e, "restore", e2e["first"]["snapshot_id"][:12], str(work / "older"), "--repo", e2e["repo"]).ok()
    assert_same_tree(e2e["fp_first"], work / "older")


def test_restore_onto_a_file_system_without_symlinks_warns_and_names_them(e2e, tmp_path):
    # FAT/exFAT cannot be mounted here: the CLI process gets a symlink(2) that fails as there.
    (tmp_path / "sitecustomize.py").write_text(
        "import errno, os\n"
        "def _refuse(src, dst, *a, **k):\n"
        "    raise OSError(errno.EPERM, 'Operation not permitted', src, None, dst)\n"
        "os.symlink = _refuse\n")
    env = {**e2e["env"], "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "fat"
    # --no-runner: the failing symlink(2) is patched into the process that restores
    res = run(["restore", "latest", str(out), "--repo", e2e["repo"], "--no-runner"], env, e2e["work"]).ok()
    links = sorted(p for p, e in fingerprint(e2e["tree"].root).entries.items() if e[0] == "symlink")
    shown = re.search(rf"warning: {len(links)} symlink\(s\) not restored \(([^)]*)\)", res.stderr)
    assert links and shown, res.stderr
    assert set(shown.group(1).split(" and ")[0].split(", ")) <= set(links)
    assert "cannot hold symlinks" in res.stderr and "Traceback" not in res.stderr
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert sum(1 for p in out.rglob("*") if p.is_file()) == sum(1 for p in e2e["tree"].root.rglob("*")
                                                                 if p.is_file() and not p.is_symlink())


def test_restore_selected_paths(e2e):
    target = e2e["work"] / "some"
    cli(e2e, "restore", "latest", str(target), "--include", "media", "--include", "hard/original.txt",
        "-r", e2e["repo"]).ok()
    got = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    assert got == ["hard", "hard/original.txt", "media", "media/random-2MiB.bin", "media/same-as-random.bin",
                   "media/text-1.5MiB.txt"]
    src = e2e["tree"].root
    assert (target / "media/text-1.5MiB.txt").read_bytes() == (src / "media/text-1.5MiB.txt").read_bytes()


def test_verify_read_data_is_clean(e2e):
    out = cli(e2e, "verify", "--read-data", "-r", e2e["repo"], "--json").json()
    assert out["ok"] is True and out["problems"] == [] and out["snapshots"] == 2
    assert out["bytes_read"] > 64 * 1024 * 1024
    assert "no problems found" in cli(e2e, "verify", "-r", e2e["repo"]).ok().stdout


def test_export_then_tar_xzf_equals_the_tree(e2e):
    work = e2e["work"]
    archive = work / "latest.tar.gz"
    out = cli(e2e, "export", "latest", str(archive), "-r", e2e["repo"], "--json").json()
    assert out["file"] == str(archive) and archive.stat().st_size > 60 * 1024 * 1024
    dest = work / "untarred"
    dest.mkdir()
    proc = subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert_same_tree(e2e["tree"].root, dest, mtimes=False)


def test_stats(e2e):
    s = cli(e2e, "stats", "-r", e2e["repo"], "--json").json()
    assert s["snapshots"] == 2 and s["chains"] == 1
    assert s["bytes_stored"] >= e2e["first"]["bytes_added"] + e2e["second"]["bytes_added"]
    assert s["dedup_ratio"] > 1.5  # two snapshots of nearly the same tree
    assert "snapshots" in cli(e2e, "stats", "-r", e2e["repo"]).ok().stdout


def test_repository_from_environment(e2e):
    env = {**e2e["env"], "BACKUPFLOW_REPO": e2e["repo"]}
    out = run(["snapshots", "--json"], env, e2e["work"]).json()
    assert len(out["snapshots"]) == 2


# --- user mistakes: one sentence on stderr, no traceback, non-zero exit -----------------------

def test_missing_source(e2e):
    r = cli(e2e, "backup", str(e2e["work"] / "no such folder"), "-r", e2e["repo"], "--json")
    line = r.one_sentence_error()
    assert "no such folder" in line and "does not exist" in line


def test_unknown_snapshot(e2e):
    r = cli(e2e, "ls", "0123456789abcdef", "-r", e2e["repo"])
    assert "No snapshot matches '0123456789abcdef'" in r.one_sentence_error()
    r = cli(e2e, "restore", "fedcba9876", str(e2e["work"] / "nowhere"), "-r", e2e["repo"])
    assert "fedcba9876" in r.one_sentence_error()
    assert not (e2e["work"] / "nowhere").exists()


def test_location_that_holds_something_else(e2e):
    other = e2e["work"] / "not-a-repo"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    line = cli(e2e, "snapshots", "-r", str(other)).one_sentence_error()
    assert "not a backupflow repository" in line
    line = cli(e2e, "backup", str(e2e["tree"].root / "media"), "-r", str(other)).one_sentence_error()
    assert "holds other files" in line or "not a backupflow repository" in line
    assert sorted(os.listdir(other)) == ["thesis.docx"]
    line = cli(e2e, "init", "-r", str(other)).one_sentence_error()
    assert "holds other files" in line


def test_missing_repo(e2e):
    line = cli(e2e, "snapshots").one_sentence_error()
    assert "--repo" in line and "BACKUPFLOW_REPO" in line


def test_bad_option(e2e):
    line = cli(e2e, "snapshots", "-r", e2e["repo"], "--option", "novalue").one_sentence_error()
    assert "novalue" in line and "key=value" in line


def test_read_only_commands_do_not_import_prefect():
    code = "import flows.cli.repo_commands, sys; print('prefect' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", (
        "importing the CLI's read-only commands loads Prefect (>1 s): flows/cli/__init__.py imports "
        "guardian_commands, which imports flows.approvals -> prefect at module top")


# --- damage and hostile snapshots through the CLI ---------------------------------------------

def test_verify_read_data_names_a_corrupted_pack(e2e, tmp_path):
    env, work = e2e["env"], e2e["work"]
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "report ü.bin").write_bytes(os.urandom(200_000))
    repo = tmp_path / "repo"
    sid = run(["backup", str(src), "-r", str(repo), "--json"], env, work).json()["snapshot_id"]
    pack = next(p for p in (repo / "data").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[1000] ^= 0xFF  # inside the one blob
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))

    r = run(["verify", "--read-data", "-r", str(repo)], env, work)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert sid[:8] in r.stderr and "docs/report ü.bin" in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("backupflow: ")
    report = run(["verify", "--read-data", "-r", str(repo), "--json"], env, work)
    assert report.returncode != 0
    doc = json.loads(report.stdout)
    assert doc["ok"] is False and doc["damaged_snapshots"] == [sid]
    assert doc["damaged_files"] == {sid: ["docs/report ü.bin"]}
    # structure-only verify does not read packs, so it cannot see a flipped byte; it still runs clean
    assert run(["verify", "-r", str(repo), "--json"], env, work).json()["ok"] is True


def test_restore_of_a_hostile_snapshot_is_refused(e2e, tmp_path):
    env, work = e2e["env"], e2e["work"]
    repo = open_repository(e2e["repo"])
    snap = repo.snapshot(e2e["first"]["snapshot_id"])
    donor = next(e for e in snap.tree if e["type"] == "file" and e["chunks"])
    evil = {**donor, "path": "../escaped.txt"}
    bad = repo.snapshots.save(type(snap)(**{**snap.__dict__, "id": "", "tree": [evil] + snap.tree}))
    target = tmp_path / "target"
    try:
        line = run(["restore", bad, str(target), "-r", e2e["repo"]], env, work).one_sentence_error()
    finally:
        repo.backend.remove(f"snapshots/{bad}")  # the other tests expect the two real snapshots
    assert "outside the target" in line
    assert not target.exists() and not (tmp_path / "escaped.txt").exists()
