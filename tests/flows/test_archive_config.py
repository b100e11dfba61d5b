"""`backupflow archive` with the seed's [backup] block as its configuration: the defaults come
from archive_threshold_days, keep_minimum_count, archive_path and compression_level; with
enable_backups = false it changes nothing."""

from __future__ import annotations

import os

import pytest

from storage import Repository
from storage.errors import BackupsDisabled
from tests.flows.cli_process import cli_env, run
from tests.seed_config import seed_config
from tests.suite_password import open_repository

pytestmark = pytest.mark.prefect


@pytest.fixture
def seeded(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    repo = Repository.init(str(tmp_path / "data" / "backups"))  # backup_path, relative to the command's folder
    ids = []
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"line {i}\n" * 5000)
        ids.append(repo.backup(str(src), type="full").snapshot_id)
    return prefect_server, tmp_path, ids


def test_the_seed_block_gives_the_archive_its_defaults(seeded):
    server, tmp_path, ids = seeded
    env = cli_env(server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, keep_minimum_count="1"))
    dry = run(["archive", "--dry-run", "--json"], env, tmp_path).json()
    # archive_threshold_days = 30: nothing made today is due; keep_minimum_count = 1 keeps the newest
    assert dry["snapshots"] == [] and dry["older_than_days"] == 30 and dry["keep"] == 1
    assert all("younger than 30 days" in dry["skipped"][sid] for sid in ids[:2])
    assert dry["destination"] == str(tmp_path / "data" / "archives")

    out = run(["archive", "--older-than", "0d", "--json"], env, tmp_path).json()
    assert out["snapshots"] == ids[:2] and out["compression_level"] == 6
    archives = tmp_path / "data" / "archives"
    assert sorted(os.listdir(archives)) == sorted([f"{s}.tar.gz" for s in ids[:2]] + [f"{s}.json" for s in ids[:2]])
    assert [s.id for s in open_repository(str(tmp_path / "data" / "backups")).snapshots.all()] == [ids[2]]
    listed = run(["archives", "--json"], env, tmp_path).json()  # archive_path again
    assert [a["id"] for a in listed["archives"]] == ids[:2]


def test_with_backups_disabled_archive_changes_nothing(seeded):
    server, tmp_path, ids = seeded
    env = cli_env(server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, enable_backups="false"))
    res = run(["archive", "--older-than", "0d", "--keep", "0"], env, tmp_path)
    assert "backups are disabled in the configuration" in res.one_sentence_error()
    assert res.returncode == BackupsDisabled.exit_code
    assert not (tmp_path / "data" / "archives").exists()
    assert len(open_repository(str(tmp_path / "data" / "backups")).snapshots.all()) == 3


@pytest.mark.parametrize("args,says,code", [
    (["archive", "--older-than", "soon"], "write it as 30d, 12h or 2w", 2),
    (["archive", "--keep", "-1", "--older-than", "0d"], "--keep -1 is negative", 2),
    (["archive", "--to", "ftp://host/x"], "ftp:// is not supported", 2),
    (["archive", "--to-option", "no_such_option=1"], "Unknown option 'no_such_option'", 2),
    (["restore", "archive:ffff", "out"], "There is no archive ffff", 3),
    (["restore", "archive:", "out"], "Name an archive", 2),
])
def test_archive_bad_input_is_one_sentence(seeded, args, says, code):
    server, tmp_path, ids = seeded
    env = cli_env(server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path))
    res = run(args, env, tmp_path)
    assert says in res.one_sentence_error() and res.returncode == code
    assert len(open_repository(str(tmp_path / "data" / "backups")).snapshots.all()) == 3
