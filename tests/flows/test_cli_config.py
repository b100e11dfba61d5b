"""The seed's [backup] block as the configuration of the installed `backupflow` command:
a backup lands in its backup_path at its compression level; enable_backups = false writes
nothing (issue 14, "The configuration")."""

from __future__ import annotations

import json
import os

from storage.errors import BackupsDisabled
from tests.flows.cli_process import cli_env, run
from tests.seed_config import seed_config
from tests.suite_password import SUITE_ENV, open_repository


def test_a_backup_with_the_seed_block_as_config_goes_to_its_backup_path(prefect_server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("the same line again\n" * 2000)
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path))
    out = run(["backup", "src", "--json"], env, tmp_path).json()
    repo = open_repository(str(tmp_path / "data" / "backups"))  # backup_path, from the folder the command ran in
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


def test_config_check_prints_each_value_and_where_it_came_from_with_secrets_masked(tmp_path):
    config = seed_config(tmp_path, cloud_secret_key='"wJalrXUtnFEMI-secret"', cloud_provider='"s3"')
    env = cli_env_without_server(tmp_path, BACKUPFLOW_CONFIG=config, BACKUPFLOW_AUDIT_PATH="/srv/audit")
    out = run(["config", "check", "--json"], env, tmp_path).json()
    values = out["settings"]
    assert out["config_file"] == config and out["valid"] is True
    assert values["backup.compression_level"] == {"value": 6, "source": config,
                                                  "allowed": "0-9 (0 = stored, 9 = smallest)"}
    assert values["backup.pack_size_mib"] == {"value": 16, "source": "default"}
    assert values["audit.audit_path"] == {"value": "/srv/audit", "source": "environment variable BACKUPFLOW_AUDIT_PATH"}
    assert values["backup.cloud_secret_key"]["value"] == "***"
    # a relative path depends on the folder a command (or a worker) runs in: shown resolved
    assert values["backup.archive_path"]["resolved"] == str(tmp_path / "data" / "archives")
    assert "resolved" not in values["audit.audit_path"]
    text = run(["config", "check"], env, tmp_path).ok().stdout
    assert "wJalrXUtnFEMI" not in text and "wJalrXUtnFEMI" not in json.dumps(out)
    assert "backup.backup_time" in text and "'02:00'" in text


def test_config_check_names_the_bad_key_and_the_allowed_values(tmp_path):
    env = cli_env_without_server(tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, backup_frequency='"fortnightly"'))
    line = run(["config", "check"], env, tmp_path).one_sentence_error()
    assert "'backup.backup_frequency' = 'fortnightly' is invalid" in line and "'hourly', 'daily' or 'weekly'" in line


def cli_env_without_server(work, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUPFLOW_", "PREFECT_API")) or k in SUITE_ENV}
    env.update(BACKUPFLOW_RUNNER="off", BACKUPFLOW_AUDIT_PATH=str(work / "audit"))
    env.update(extra)
    return env


def test_serve_refuses_disabled_backups_and_a_missing_source_in_one_sentence(tmp_path):
    disabled = cli_env_without_server(tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path, enable_backups="false"))
    result = run(["serve", "--source", str(tmp_path)], disabled, tmp_path)
    assert "set enable_backups = true to serve the schedules" in result.one_sentence_error()
    assert result.returncode == 17
    no_source = cli_env_without_server(tmp_path, BACKUPFLOW_CONFIG=seed_config(tmp_path))
    line = run(["serve"], no_source, tmp_path).one_sentence_error()
    assert "No folder to back up; pass --source DIR or set source in the config's [backup]" in line
    assert not (tmp_path / "data").exists()
