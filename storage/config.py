"""backupflow configuration: one TOML file, validated, with environment overrides.

The file is found at ``--config PATH``, ``BACKUPFLOW_CONFIG``, or ``config/config.toml`` in the
current directory; without one, the defaults below apply. Unknown keys are an error that
names the key, so a typo never silently disables a setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storage.errors import InvalidConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackupSettings(_Section):
    repository: str | None = None
    source: str | None = None
    compression_level: int = Field(3, ge=0, le=22)  # 0 = stored uncompressed
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
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidConfig(f"{path}: setting '{where}' is invalid: {err['msg']}.") from exc
