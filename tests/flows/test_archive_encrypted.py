"""`backupflow archive` of an encrypted repository: each archive is an age file under the
repository's password (`age -d ... | tar -xz` restores it), the read-back before the forget
decrypts it, `verify --archives` checks it without the password, and `restore archive:ID`
restores it with the password and refuses without it."""

from __future__ import annotations

import os
import subprocess

import pytest

from storage import Repository
from storage.errors import PasswordRequired
from tests.flows.cli_process import cli_env, run
from tests.suite_password import PASSWORD as SUITE_PASSWORD
from tests.treegen import assert_same_tree

pyrage = pytest.importorskip("pyrage")
pytestmark = pytest.mark.prefect

PASSWORD = SUITE_PASSWORD  # what the suite gives every command (BACKUPFLOW_PASSWORD_FILE)


def test_archives_of_an_encrypted_repository_are_age_files_under_its_password(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    repo = Repository.init(str(tmp_path / "repo"), password=PASSWORD)
    ids = []
    for i in range(2):
        (src / f"f{i}.bin").write_bytes(os.urandom(70_000))
        ids.append(repo.backup(str(src), type="full").snapshot_id)
    dest = tmp_path / "archives"
    work = tmp_path / "cwd"
    work.mkdir()
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_REPO=str(tmp_path / "repo"))

    out = run(["archive", "--older-than", "0d", "--keep", "1", "--to", str(dest), "--json"], env, work).json()
    assert out["forgotten"] == [ids[0]] and out["published"][0]["encrypted"] is True
    stored = (dest / f"{ids[0]}.tar.gz.age").read_bytes()
    assert stored.startswith(b"age-encryption.org/v1\n-> scrypt ")
    untarred = tmp_path / "untarred"
    untarred.mkdir()
    subprocess.run(["tar", "-xz", "-C", str(untarred)], input=pyrage.passphrase.decrypt(stored, PASSWORD), check=True)
    assert sorted(p.name for p in untarred.iterdir()) == ["f0.bin"]
    assert (untarred / "f0.bin").read_bytes() == (src / "f0.bin").read_bytes()

    no_password = {k: v for k, v in env.items() if k != "BACKUPFLOW_PASSWORD_FILE"}
    assert "no problems found: 1 archive(s)" in run(["verify", "--archives", "--from", str(dest)], no_password,
                                                     work).ok().stdout
    refused = run(["restore", f"archive:{ids[0][:8]}", str(tmp_path / "nope"), "--from", str(dest)], no_password, work)
    assert refused.returncode == PasswordRequired.exit_code and "password" in refused.one_sentence_error()
    run(["restore", f"archive:{ids[0][:8]}", str(tmp_path / "back"), "--from", str(dest)], env, work).ok()
    assert_same_tree(untarred, tmp_path / "back", mtimes=False)
