"""Cloud credentials reach the storage and nothing else: not the flow-run parameters, the
Prefect artifacts, the audit log, the repository, or the command's output. One way in is a
Prefect Secret block named in the config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from flows import backup_flow
from storage.errors import InvalidConfig

from tests.suite_password import SUITE_ENV

pytestmark = [pytest.mark.prefect, pytest.mark.cloud]

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))
SECRET = "S3CR3T-never-shown-4711"


def _env(prefect_server, tmp_path, config: str) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config + f'\n[audit]\naudit_path = {json.dumps(str(tmp_path / "audit"))}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKUPFLOW_")) or k in SUITE_ENV}
    env.update(prefect_server.env())
    env["BACKUPFLOW_CONFIG"] = str(cfg)
    return env


def _run(env, cwd, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([BACKUPFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _source(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * 100)
    return src


def _assert_secret_nowhere(s3_server, bucket: str, tmp_path: Path, outputs: list[str]) -> None:
    for text in outputs:
        assert SECRET not in text
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        assert runs, "the backup ran no flow"
        for run in runs:
            assert SECRET not in json.dumps(run.parameters, default=str), run.name
        for artifact in client.read_artifacts():
            assert SECRET not in json.dumps(artifact.data, default=str) + str(artifact.description)
    for path in (tmp_path / "audit").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    s3 = s3_server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith("config") for k in keys)
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert SECRET.encode() not in body, key


def test_credentials_from_a_prefect_secret_block_are_used_and_never_shown(prefect_server, s3_server, tmp_path):
    dest = s3_server.new_destination(create=True)
    # The block carries the endpoint too, and the environment has no AWS settings at all: the
    # backup can only reach the server through the block.
    Secret(value={"endpoint_url": s3_server.endpoint, "key": "testing", "secret": SECRET}).save(
        "bf-test-s3", overwrite=True)
    env = _env(prefect_server, tmp_path, f'''
[backup]
cloud_backup_enabled = true
cloud_provider = "s3"
cloud_bucket = "{dest.bucket}/viablock"
cloud_secret_block = "bf-test-s3"
''')
    src = _source(tmp_path)
    out = [_run(env, tmp_path, "backup", str(src), "--json")]
    out.append(_run(env, tmp_path, "snapshots", "--json"))
    out.append(_run(env, tmp_path, "restore", "latest", str(tmp_path / "out"), "--json"))
    assert (tmp_path / "out" / "f3.txt").read_text() == "file 3\n" * 100
    assert len(json.loads(out[1].stdout)["snapshots"]) == 1
    _assert_secret_nowhere(s3_server, dest.bucket, tmp_path, [p.stdout + p.stderr for p in out])


def test_a_missing_secret_block_is_one_clear_sentence(prefect_server, s3_server, tmp_path):
    env = _env(prefect_server, tmp_path, '''
[backup]
cloud_backup_enabled = true
cloud_provider = "s3"
cloud_bucket = "nowhere"
cloud_secret_block = "no-such-block"
''')
    proc = subprocess.run([BACKUPFLOW, "snapshots"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no-such-block" in proc.stderr and "does not exist" in proc.stderr


def test_credentials_given_as_options_stay_out_of_parameters_artifacts_audit_and_repository(
        prefect_server, s3_server, tmp_path):
    dest = s3_server.new_destination(create=True)
    env = _env(prefect_server, tmp_path, "")
    src = _source(tmp_path)
    repo = ["--repo", dest.url, "--option", f"endpoint_url={s3_server.endpoint}",
            "--option", "key=testing", "--option", f"secret={SECRET}"]
    out = [_run(env, tmp_path, "backup", str(src), *repo, "--json"),
           _run(env, tmp_path, "verify", "--read-data", *repo, "--json")]
    assert json.loads(out[1].stdout)["ok"] is True
    _assert_secret_nowhere(s3_server, dest.bucket, tmp_path, [p.stdout + p.stderr for p in out])


URL_LEAKS = [
    ("--repo", "ftp://backup:{s}@127.0.0.1:1/repo"),  # refused for its scheme, without the password
    ("--repo", "s3://AKIAEXAMPLE:{s}@bucket/repo"),
    ("--repo", "s3://bucket/repo?token={s}"),
    ("--repo", "az://container/repo?sv=2022-11-02&sig={s}"),
    ("--repo", "s3://bucket/repo?X-Amz-Credential=AKIA&X-Amz-Signature={s}"),
    ("--option", "endpoint_url=http://minio:{s}@127.0.0.1:1"),
]


@pytest.mark.parametrize("flag, value", URL_LEAKS)
def test_credentials_in_urls_are_refused_before_anything_records_them(prefect_server, tmp_path, flag, value):
    env = _env(prefect_server, tmp_path, "")
    src = _source(tmp_path)
    args = ["--repo", "s3://bucket/repo", flag, value.format(s=SECRET)] if flag == "--option" else \
        [flag, value.format(s=SECRET)]
    with get_client(sync_client=True) as client:
        runs_before = len(client.read_flow_runs())
    proc = subprocess.run([BACKUPFLOW, "backup", str(src), *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and proc.stderr.count("\n") == 1
    assert "remove it from the URL" in proc.stderr or "ftp:// is not supported" in proc.stderr
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        assert len(runs) == runs_before  # no run was created with it
        for run in runs:
            assert SECRET not in run.name + json.dumps(run.parameters, default=str)
        assert all(SECRET not in log.message for log in client.read_logs())
    for path in (tmp_path / "audit").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_python_callers_get_the_same_refusal(prefect_server, tmp_path):
    with get_client(sync_client=True) as client:
        runs_before = len(client.read_flow_runs())
    with pytest.raises(InvalidConfig, match="remove it from the URL") as err:
        backup_flow(source=str(_source(tmp_path)), repo=f"s3://bucket/repo?sig={SECRET}")
    assert SECRET not in err.value.message
    with get_client(sync_client=True) as client:
        assert len(client.read_flow_runs()) == runs_before
