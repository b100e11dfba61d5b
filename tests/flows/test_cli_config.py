"""The seed's [backup] block as the configuration of the installed `backupflow` command:
a backup lands in its backup_path at its compression level; enable_backups = false writes
nothing (issue 14, "The configuration")."""

from __future__ import annotations

import json

from storage import Repository
from storage.errors import BackupsDisabled
from tests.flows.cli_process import cli_env, run
from tests.seed_config import seed_config


def test_a_backup_with_the_seed_block_as_config_goes_to_its_backup_path(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("the same line again\n" * 2000)
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path))
    out = run(["backup", "src", "--json"], env, tmp_path).json()
    repo = Repository.open(str(tmp_path / "data" / "backups"))  # backup_path, from the folder the command ran in
    assert [s.id for s in repo.snapshots.all()] == [out["snapshot_id"]]
    assert repo.config.compression_level == 9  # compression_level = 6 is zstd 9
    assert out["compression_ratio"] > 10


def test_with_backups_disabled_every_writing_command_says_so_and_writes_nothing(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, enable_backups="false"))
    for args in (["backup", "src"], ["init"], ["init", "--repo", "other"], ["prune"], ["forget", "1a2b3c4d"]):
        result = run(args, env, tmp_path)
        line = result.one_sentence_error()
        assert result.returncode == BackupsDisabled.exit_code == 17, (args, line)
        assert "backups are disabled in the configuration (enable_backups = false)" in line
    assert not (tmp_path / "data" / "backups").exists() and not (tmp_path / "other").exists()
    events = [json.loads(line) for f in (tmp_path / "audit").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert not [e for e in events if e.get("type", "").startswith("backup.")], events
