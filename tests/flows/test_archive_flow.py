"""`backupflow archive`, `archives`, `restore archive:ID` and `verify --archives` through the
installed command against the test Prefect server, and `archive_flow` from Python: old chains
become standard tar.gz files that plain tar lists and restores byte for byte, with their
metadata; the rest stays, each with the reason; a dry run changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from prefect import get_client

from storage import Repository
from storage.audit import AuditLog
from storage.errors import IntegrityError, RestoreIncomplete
from tests.flows.cli_process import cli_env, run
from tests.treegen import assert_same_tree

pytestmark = pytest.mark.prefect


@pytest.fixture
def chains(prefect_server, tmp_path):
    """A chain of three (full, incremental, incremental) and a newer full, with a copy of the
    source as each snapshot saw it: (env, work, repo_dir, dest_dir, [ids], {id: copy})."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    ids, copies = [], {}
    for i, typ in enumerate(("full", "incremental", "incremental", "full")):
        (src / f"f{i}.bin").write_bytes(os.urandom(50_000 + i))
        (src / "sub" / "notes.txt").write_text(f"version {i}\n" * 300)
        sid = repo.backup(str(src), type=typ, tags=[f"t{i}"], description=f"state {i}").snapshot_id
        ids.append(sid)
        copies[sid] = tmp_path / f"copy{i}"
        shutil.copytree(src, copies[sid], symlinks=True)
    work = tmp_path / "cwd"
    work.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("[backup]\ncompression_level = 9\n")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir), BACKUPFLOW_CONFIG=str(config))
    return env, work, repo_dir, tmp_path / "archives", ids, copies


def test_archive_moves_the_old_chain_to_tar_gz_files_that_tar_restores(chains, tmp_path):
    env, work, repo_dir, dest, ids, copies = chains
    out = run(["archive", "--older-than", "0d", "--keep", "1", "--to", str(dest), "--json"], env, work).json()
    old = ids[:3]
    assert out["snapshots"] == old and out["forgotten"] and set(out["forgotten"]) == set(old)
    assert "newest" in out["skipped"][ids[3]]
    assert out["prune"]["packs_deleted"] >= 1

    repo = Repository.open(str(repo_dir))
    assert [s.id for s in repo.snapshots.all()] == [ids[3]]
    assert repo.verify(read_data=True).ok
    assert sorted(p.name for p in dest.iterdir()) == sorted([f"{i}.tar.gz" for i in old] + [f"{i}.json" for i in old])
    for i, sid in enumerate(old):
        archive = dest / f"{sid}.tar.gz"
        listed = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True).stdout
        assert {line.rstrip("/") for line in listed.splitlines()} == {"sub", "sub/notes.txt"} | {
            f"f{k}.bin" for k in range(i + 1)}
        untarred = tmp_path / f"untarred{i}"
        untarred.mkdir()
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(untarred)], check=True)
        assert_same_tree(copies[sid], untarred, mtimes=False)
        meta = json.loads((dest / f"{sid}.json").read_text())
        assert meta["snapshot_id"] == sid and meta["type"] == ("full" if i == 0 else "incremental")
        assert meta["tags"] == [f"t{i}"] and meta["description"] == f"state {i}"
        assert meta["source"] == str(tmp_path / "src") and meta["files"] == i + 2
        assert meta["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
        assert meta["bytes"] == archive.stat().st_size and meta["compression_level"] == 9
        assert archive.read_bytes()[8] == 2  # the gzip header's "maximum compression" flag: level 9

    listed = run(["archives", "--from", str(dest), "--json"], env, work).json()
    assert [a["id"] for a in listed["archives"]] == old
    assert listed["archives"][0]["content_bytes"] == 50_000 + len("version 0\n" * 300)
    table = run(["archives", "--from", str(dest)], env, work).ok().stdout
    assert all(sid[:8] in table for sid in old)

    types = [e["type"] for e in AuditLog(tmp_path / "audit").get_events() if e["type"].startswith("archive.")]
    assert types == ["archive.started", "archive.published", "archive.published", "archive.published",
                     "archive.completed"]

    again = run(["archive", "--older-than", "0d", "--keep", "1", "--to", str(dest), "--json"], env, work).json()
    assert again["snapshots"] == [] and len(list(dest.iterdir())) == 6


def test_a_dry_run_changes_nothing_and_names_what_would_go(chains):
    env, work, repo_dir, dest, ids, _ = chains
    before = sorted(p.name for p in repo_dir.rglob("*"))
    res = run(["archive", "--older-than", "0d", "--keep", "1", "--to", str(dest), "--dry-run"], env, work).ok()
    assert f"would archive 3 snapshot(s) ({ids[0][:8]}, {ids[1][:8]}, {ids[2][:8]})" in res.stdout
    assert f"kept {ids[3][:8]}: one of the 1 newest" in res.stdout
    assert sorted(p.name for p in repo_dir.rglob("*")) == before and not dest.exists()


def test_a_chain_a_kept_snapshot_needs_is_not_archived(chains):
    env, work, repo_dir, dest, ids, _ = chains
    # keep 3: the newest full and the last two incrementals stay, so their full must stay too
    out = run(["archive", "--older-than", "0d", "--keep", "3", "--to", str(dest), "--json"], env, work).json()
    assert out["snapshots"] == [] and "depends on it" in out["skipped"][ids[0]]
    assert len(Repository.open(str(repo_dir)).snapshots.all()) == 4


def test_restore_archive_id_restores_the_snapshot_and_verify_archives_catches_damage(chains, tmp_path):
    env, work, repo_dir, dest, ids, copies = chains
    run(["archive", "--older-than", "0d", "--keep", "1", "--to", str(dest)], env, work).ok()
    target = tmp_path / "restored"
    res = run(["restore", f"archive:{ids[1][:10]}", str(target), "--from", str(dest)], env, work).ok()
    assert f"of archive {ids[1][:8]} into {target}" in res.stdout
    assert_same_tree(copies[ids[1]], target, mtimes=False)

    ok = run(["verify", "--archives", "--from", str(dest)], env, work).ok()
    assert "no problems found: 3 archive(s)" in ok.stdout
    archive = dest / f"{ids[2]}.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    archive.write_bytes(bytes(data))
    bad = run(["verify", "--archives", "--from", str(dest)], env, work)
    assert bad.returncode == IntegrityError.exit_code
    assert f"problem: archive {ids[2][:8]}" in bad.stderr and "Traceback" not in bad.stderr
    assert ids[0][:8] not in bad.stderr and ids[1][:8] not in bad.stderr


def _hostile_archive(dest: Path, tmp_path: Path) -> str:
    """An archive (made by hand) whose members try to leave the target."""
    sid = "ab" * 32
    dest.mkdir(exist_ok=True)
    path = dest / f"{sid}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("fine.txt", b"fine\n"), ("../escaped.txt", b"out\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    meta = {"format": "backupflow-archive", "version": 1, "id": sid, "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size, "files": 2,
            "content_bytes": 9, "type": "full", "source": "/x", "host": "h", "time": "2026-01-01T00:00:00+00:00",
            "archived_at": "2026-01-02T00:00:00+00:00"}
    (dest / f"{sid}.json").write_text(json.dumps(meta))
    return sid


def test_restoring_an_archive_never_writes_outside_the_target(chains, tmp_path):
    env, work, _, dest, _, _ = chains
    sid = _hostile_archive(dest, tmp_path)
    target = tmp_path / "t" / "inner"
    res = run(["restore", f"archive:{sid[:8]}", str(target), "--from", str(dest)], env, work)
    assert res.returncode == RestoreIncomplete.exit_code, res.stderr
    assert "../escaped.txt" in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert (target / "fine.txt").read_text() == "fine\n"
    assert not (tmp_path / "t" / "escaped.txt").exists()


def test_archive_flow_from_python(chains):
    _, _, repo_dir, dest, ids, _ = chains
    from flows import archive_flow

    result = archive_flow(repo=str(repo_dir), to=str(dest), older_than="0d", keep=1)
    assert [m["id"] for m in result["published"]] == ids[:3] and result["flow_run_id"]
    with get_client(sync_client=True) as client:  # the run's name in the UI says what it did
        name = client.read_flow_run(result["flow_run_id"]).name
    assert name == f"archive 3 snapshot(s) ({ids[0][:8]}, {ids[1][:8]}, {ids[2][:8]}) to {dest}"
    assert [s.id for s in Repository.open(str(repo_dir)).snapshots.all()] == [ids[3]]
