"""backupflow configuration: one TOML file, validated, with environment overrides.

The file is found at ``--config PATH``, ``BACKUPFLOW_CONFIG``, or ``config/config.toml`` in the
current directory; without one, the defaults below apply. Unknown keys are an error that
names the key, so a typo never silently disables a setting.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage.errors import BackupsDisabled, InvalidConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# compression_level 0-9 (gzip's scale: 0 = stored, 9 = smallest) onto zstd levels for packs;
# the .tar.gz archives use the gzip level of the same number. 1-3 are zstd's own fast levels
# (3, the default, is zstd's default), 4-9 spread over zstd's stronger ones up to 19 (20-22
# need hundreds of MiB per compressor).
ZSTD_LEVELS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5, 5: 7, 6: 9, 7: 12, 8: 15, 9: 19}


def zstd_level(level: int) -> int:
    """The zstd level of packs for a configured ``compression_level`` (0-9)."""
    return ZSTD_LEVELS[level]


def gzip_level(level: int) -> int:
    """The gzip level of ``.tar.gz`` archives for a configured ``compression_level`` (0-9)."""
    return level


BACKUP_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# What an invalid value of a key may be instead: named in the error and by `config check`.
ALLOWED = {
    "backup.backup_frequency": "hourly, daily or weekly",
    "backup.backup_time": "HH:MM from 00:00 to 23:59 (24-hour clock, UTC)",
    "backup.compression_level": "0-9 (0 = stored, 9 = smallest)",
    "backup.retention_days": "a whole number of days, 1 or more",
    "backup.archive_threshold_days": "a whole number of days, 1 or more",
    "backup.keep_minimum_count": "a whole number, 0 or more",
    "backup.cloud_provider": "s3, azure or gcs",
}


class BackupSettings(_Section):
    repository: str | None = None  # the same as backup_path (older name); set one of the two
    backup_path: str | None = None  # the default repository: a local path or any fsspec URL
    archive_path: str | None = None  # the default archive destination: a local path or any fsspec URL
    source: str | None = None
    enable_backups: bool = True  # false: every command that would write refuses (exit 17)
    auto_backup_enabled: bool = True  # false: no backup schedule is served (verify etc. still are)
    backup_frequency: Literal["hourly", "daily", "weekly"] = "daily"
    backup_time: str = "02:00"  # UTC; hourly: its minute; weekly: on Sundays
    retention_days: int = Field(90, ge=1)
    archive_threshold_days: int = Field(30, ge=1)
    keep_minimum_count: int = Field(10, ge=0)
    include_versions: bool = True  # a backup carries the repository's version history reference
    include_workflows: bool = False  # a backup carries an export of the Prefect deployments
    compression_level: int = Field(3, ge=0, le=9)  # see ZSTD_LEVELS
    exclude: list[str] = []
    pack_size_mib: int = Field(16, ge=1, le=128)
    connections: int | None = Field(None, ge=1, le=64)  # default: 1 upload on local disk, 4 in the cloud
    upload_limit: str | None = None
    download_limit: str | None = None
    options: dict[str, Any] = {}
    # cloud destination keys (see README: cloud destinations)
    cloud_backup_enabled: bool = False
    cloud_provider: Literal["s3", "azure", "gcs"] | None = None
    cloud_bucket: str | None = None
    cloud_region: str | None = None
    cloud_access_key: str | None = None
    cloud_secret_key: str | None = None
    cloud_endpoint: str | None = None
    cloud_secret_block: str | None = None
    storage_class: str | None = None
    object_lock_days: int | None = None
    # where an encrypted repository's password comes from (README: encryption; tasks/passwords.py)
    password_command: str | None = None
    password_secret_block: str | None = None

    @field_validator("backup_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not BACKUP_TIME.match(value):
            raise ValueError("not a time of day")
        return value

    @field_validator("compression_level", mode="before")
    @classmethod
    def _not_a_zstd_level(cls, value: Any) -> Any:
        if isinstance(value, int) and 10 <= value <= 22:
            raise ValueError(f"{value} is an old zstd level; the scale is now 0-9, where 9 is zstd 19")
        return value

    @model_validator(mode="after")
    def _one_repository(self) -> "BackupSettings":
        # backup_path and repository are two names of one setting: either may be given, or
        # both when they agree; the model then carries it under both names.
        if self.backup_path and self.repository and self.backup_path != self.repository:
            raise ValueError("backup_path and repository name two different repositories; "
                             "keep one of them (they are the same setting)")
        self.repository = self.repository or self.backup_path
        self.backup_path = self.repository
        return self

    @property
    def backup_hour_minute(self) -> tuple[int, int]:
        hour, minute = self.backup_time.split(":")
        return int(hour), int(minute)


class GuardianSettings(_Section):
    require_approval: list[Literal["low", "medium", "high", "critical"]] = ["high", "critical"]
    approvers: list[str] = []
    timeout_seconds: float = Field(24 * 3600, gt=0)
    allow_self_approval: bool = True
    critical_approvals: int = Field(1, ge=1, le=2)
    # approver name -> their OpenSSH ed25519 public key lines; decisions are then signed
    approver_keys: dict[str, list[str]] = {}
    # accept unsigned answers because the Prefect server authenticates every caller (README)
    trust_server_authentication: bool = False

    @field_validator("approver_keys", mode="before")
    @classmethod
    def _one_key_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


class ApproverSettings(_Section):
    """This person's own settings as an approver (never part of a policy)."""

    key: str | None = None  # ed25519 private key that signs `backupflow approve/reject`


class AuditSettings(_Section):
    audit_path: str = "data/audit"
    mirror_to_repository: bool = True  # an anchor of the audit chain (README: audit log)


class RunnerSettings(_Section):
    """The resident runner (deployments/runner.py). The client reads these two keys itself
    (flows/cli/runner_client.py, without pydantic); this model validates them."""

    enabled: bool = True
    idle_minutes: float = Field(30, ge=0)  # 0: never stops by itself


class Settings(_Section):
    backup: BackupSettings = BackupSettings()
    guardian: GuardianSettings = GuardianSettings()
    audit: AuditSettings = AuditSettings()
    runner: RunnerSettings = RunnerSettings()
    approver: ApproverSettings = ApproverSettings()

    @property
    def audit_path(self) -> str:
        return os.environ.get("BACKUPFLOW_AUDIT_PATH") or self.audit.audit_path


def config_path(explicit: str | None = None) -> Path | None:
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise InvalidConfig(f"The config file {explicit} does not exist; pass an existing file to --config.")
        return p
    env = os.environ.get("BACKUPFLOW_CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise InvalidConfig(f"BACKUPFLOW_CONFIG names {env}, which does not exist; fix or unset it.")
        return p
    p = Path("config/config.toml")
    return p if p.is_file() else None


def load_settings(explicit: str | None = None) -> Settings:
    path = config_path(explicit)
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path} is not valid TOML ({exc}); fix the file.") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(f"{path}: {describe_error(exc)}") from exc


def describe_error(exc: ValidationError) -> str:
    """One sentence naming the key, the value given and the values allowed."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"setting '{where}' is invalid: it is not a backupflow setting (a typo?); remove or correct it."
    allowed = ALLOWED.get(where)
    given = f" = {err['input']!r}" if where and not isinstance(err["input"], dict) else ""
    return f"setting '{where}'{given} is invalid: {msg}" + (f"; allowed: {allowed}." if allowed else ".")


def refuse_when_disabled(settings: Settings, doing: str) -> None:
    """Raise :class:`BackupsDisabled` before anything is written when backups are switched off.
    Restores, verifies and every read-only command still run: they write no backup."""
    if not settings.backup.enable_backups:
        raise BackupsDisabled(f"backups are disabled in the configuration (enable_backups = false), so nothing "
                              f"was done; set enable_backups = true to {doing}.")
