"""storage/config.py: the seed's [backup] block is accepted key by key, and every bad value is
one sentence naming the key and what it may be."""

from __future__ import annotations

import pytest

from storage.config import ZSTD_LEVELS, gzip_level, load_settings, zstd_level
from storage.errors import InvalidConfig
from tests.seed_config import seed_config


def test_the_seed_block_pasted_as_is_means_what_its_comments_say(tmp_path):
    b = load_settings(seed_config(tmp_path)).backup
    assert b.enable_backups and b.auto_backup_enabled and b.include_versions and not b.include_workflows
    assert (b.backup_frequency, b.backup_time, b.backup_hour_minute) == ("daily", "02:00", (2, 0))
    assert (b.retention_days, b.archive_threshold_days, b.keep_minimum_count) == (90, 30, 10)
    assert b.compression_level == 6 and zstd_level(6) == 9 and gzip_level(6) == 6
    # backup_path is the default repository, under both of its names
    assert b.backup_path == b.repository == "data/backups"
    assert b.archive_path == "data/archives"
    assert b.cloud_backup_enabled is False


def test_compression_levels_run_from_stored_to_smallest():
    assert zstd_level(0) == 0 and gzip_level(0) == 0          # 0 = stored
    levels = [ZSTD_LEVELS[n] for n in range(10)]
    assert levels == sorted(set(levels)) and levels[3] == 3 and levels[9] == 19


@pytest.mark.parametrize("key, value, says", [
    ("backup_frequency", '"monthly"', "'backup.backup_frequency' = 'monthly' is invalid: Input should be "
                                      "'hourly', 'daily' or 'weekly'"),
    ("backup_time", '"2:00"', "allowed: HH:MM from 00:00 to 23:59"),
    ("backup_time", '"24:00"', "'backup.backup_time' = '24:00' is invalid"),
    ("compression_level", "12", "12 is an old zstd level; the scale is now 0-9, where 9 is zstd 19"),
    ("compression_level", "-1", "allowed: 0-9 (0 = stored, 9 = smallest)"),
    ("keep_minimum_count", "-3", "'backup.keep_minimum_count' = -3 is invalid"),
    ("retention_days", "0", "allowed: a whole number of days, 1 or more"),
    ("enable_backups", '"yes please"', "'backup.enable_backups' = 'yes please' is invalid"),
    ("backup_nightly", "true", "'backup.backup_nightly' is invalid: it is not a backupflow setting"),
])
def test_a_bad_value_names_the_key_and_what_it_may_be(tmp_path, key, value, says):
    with pytest.raises(InvalidConfig) as err:
        load_settings(seed_config(tmp_path, **{key: value}))
    assert says in err.value.message and "\n" not in err.value.message


def test_backup_path_and_repository_are_one_setting(tmp_path):
    same = load_settings(seed_config(tmp_path, repository='"data/backups"')).backup
    assert same.repository == "data/backups"
    only_old = tmp_path / "old.toml"
    only_old.write_text('[backup]\nrepository = "s3://b/r"\n')
    assert load_settings(str(only_old)).backup.backup_path == "s3://b/r"
    with pytest.raises(InvalidConfig, match="backup_path and repository name two different repositories"):
        load_settings(seed_config(tmp_path, repository='"/elsewhere"'))
