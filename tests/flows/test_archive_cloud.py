"""`backupflow archive --to s3://... --storage-class DEEP_ARCHIVE` against moto: the archive is
read back before it moves to the class (which cannot be read without a restore), lands in it,
is listed, verified by size, and a restore from it says to rehydrate it first."""

from __future__ import annotations

import os

import pytest

from storage import Repository
from storage.errors import PermanentError
from tests.flows.cli_process import cli_env, run

pytestmark = pytest.mark.prefect


def test_archive_to_s3_deep_archive_through_the_cli(prefect_server, s3_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    repo_dir = tmp_path / "repo"
    repo = Repository.init(str(repo_dir))
    ids = []
    for i in range(2):
        (src / f"f{i}.bin").write_bytes(os.urandom(100_000))
        ids.append(repo.backup(str(src), type="full").snapshot_id)
    dest = s3_server.new_destination("archives")
    work = tmp_path / "cwd"
    work.mkdir()
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(repo_dir))
    to = ["--to", dest.url, *[a for k, v in dest.options.items() for a in ("--to-option", f"{k}={v}")]]
    frm = ["--from", dest.url, *[a for k, v in dest.options.items() for a in ("--from-option", f"{k}={v}")]]

    out = run(["archive", "--older-than", "0d", "--keep", "1", "--storage-class", "deep_archive", *to, "--json"],
              env, work).json()
    assert out["forgotten"] == [ids[0]] and out["storage_class"] == "DEEP_ARCHIVE"
    head = s3_server.client().head_object(Bucket=dest.bucket, Key=f"archives/{ids[0]}.tar.gz")
    assert head["StorageClass"] == "DEEP_ARCHIVE"
    listed = run(["archives", *frm, "--json"], env, work).json()["archives"]
    assert [(a["id"], a["storage_class"]) for a in listed] == [(ids[0], "DEEP_ARCHIVE")]
    assert "no problems found: 1 archive(s)" in run(["verify", "--archives", *frm], env, work).ok().stdout

    res = run(["restore", f"archive:{ids[0][:8]}", str(tmp_path / "back"), *frm], env, work)
    line = res.one_sentence_error()
    assert res.returncode == PermanentError.exit_code and "DEEP_ARCHIVE" in line and "rehydrat" in line


def test_a_storage_class_the_destination_does_not_have_is_one_sentence(prefect_server, tmp_path):
    Repository.init(str(tmp_path / "repo"))
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(tmp_path / "repo"))
    res = run(["archive", "--to", str(tmp_path / "a"), "--storage-class", "GLACIER"], env, tmp_path)
    assert "has no storage classes" in res.one_sentence_error() and res.returncode == 2
