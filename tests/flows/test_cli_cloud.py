"""End to end through the CLI against S3 (moto), Azure (Azurite) and GCS (fake-gcs-server).

Each run is what a user types: ``backupflow init/backup/restore/verify --repo URL --option k=v
--json`` as a subprocess, with the Prefect test server behind it. Restores are compared byte
for byte with the source as it was when each snapshot was taken.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite_password import open_repository


pytestmark = [pytest.mark.prefect, pytest.mark.cloud]

BACKUPFLOW = str(Path(sys.executable).with_name("backupflow"))


def cli(env, *args, timeout=300) -> dict:
    proc = subprocess.run([BACKUPFLOW, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"backupflow {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_source(root: Path, seed: int) -> None:
    rnd = random.Random(seed)
    for d in range(4):
        for f in range(10):
            p = root / f"dir{d}" / f"note{f}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"file {d}/{f}\n" + "lorem ipsum dolor sit amet\n" * rnd.randint(1, 400))
    (root / "empty.txt").write_bytes(b"")
    (root / "blob.bin").write_bytes(rnd.randbytes(3 * 2**20))  # incompressible, spans packs' chunks


@pytest.fixture
def env(prefect_server, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[audit]\naudit_path = {json.dumps(str(tmp_path / "audit"))}\n')
    e = {**os.environ, "BACKUPFLOW_CONFIG": str(cfg)}
    for k in ("BACKUPFLOW_AUDIT_PATH", "BACKUPFLOW_REPO", "BACKUPFLOW_FAULT_RATE", "BACKUPFLOW_FAULT_LOG"):
        e.pop(k, None)
    return e


def test_full_incremental_differential_restore_and_verify(cloud_destination, env, tmp_path):
    repo = cloud_destination.cli_args()
    src = tmp_path / "src"
    make_source(src, seed=1)
    cli(env, "init", *repo)

    full = cli(env, "backup", str(src), *repo, "--type", "full")
    v1 = tree(src)
    (src / "dir0" / "note0.txt").write_text("changed after the full backup\n")
    (src / "added.txt").write_text("new file\n")
    inc = cli(env, "backup", str(src), *repo, "--type", "incremental")
    v2 = tree(src)
    (src / "dir1" / "note1.txt").unlink()
    (src / "blob.bin").write_bytes((src / "blob.bin").read_bytes()[: 2**20] + b"tail changed")
    diff = cli(env, "backup", str(src), *repo, "--type", "differential")
    v3 = tree(src)

    assert (full["type"], inc["type"], diff["type"]) == ("full", "incremental", "differential")
    assert inc["parent"] == full["snapshot_id"] and diff["base_full"] == full["snapshot_id"]
    # only changed data is uploaded after the full backup
    assert inc["bytes_added"] < full["bytes_added"] / 10 and diff["bytes_added"] < full["bytes_added"] / 2

    for snap, expected in ((full, v1), (inc, v2), (diff, v3)):
        target = tmp_path / f"restore-{snap['type']}"
        cli(env, "restore", snap["snapshot_id"], str(target), *repo)
        assert tree(target) == expected, f"{snap['type']} restore differs from the source"

    report = cli(env, "verify", "--read-data", *repo)
    assert report["problems"] == [] and report["snapshots"] == 3 and report["bytes_read"] > 3 * 2**20


def test_backup_through_20_percent_transient_faults_restores_identically(s3_server, env, tmp_path):
    dest = s3_server.new_destination()
    repo = dest.cli_args()
    src = tmp_path / "src"
    make_source(src, seed=2)
    fault_log = tmp_path / "faults.log"
    cfg = Path(env["BACKUPFLOW_CONFIG"])
    cfg.write_text(cfg.read_text() + "[backup]\npack_size_mib = 1\n")  # more packs, more calls to fail
    faulty = {**env, "BACKUPFLOW_FAULT_RATE": "0.2", "BACKUPFLOW_FAULT_SEED": "11",
              "BACKUPFLOW_FAULT_LOG": str(fault_log)}

    cli(env, "init", *repo)
    first = cli(faulty, "backup", str(src), *repo, "--type", "full")
    (src / "dir2" / "note3.txt").write_text("edited between backups\n")
    second = cli(faulty, "backup", str(src), *repo)
    target = tmp_path / "restored"
    cli(faulty, "restore", "latest", str(target), *repo)
    assert tree(target) == tree(src)
    faults = fault_log.read_text().splitlines()
    assert len(faults) >= 5, faults  # the runs above really went through failures
    assert any(f.startswith("save") for f in faults) and any(f.startswith("load") for f in faults)

    # Every committed snapshot has all its data: checked without faults, reading every pack.
    report = cli(env, "verify", "--read-data", *repo)
    assert report["problems"] == [] and report["snapshots"] == 2
    with open_repository(dest.url, dest.options) as r:
        assert {s.id for s in r.snapshots.all()} == {first["snapshot_id"], second["snapshot_id"]}
    shutil.rmtree(target)


def test_a_mistyped_endpoint_is_one_sentence_in_seconds_not_minutes(env, tmp_path):
    # Nobody listens on the port. The backup task must not retry what already had its
    # first-contact time: three task retries would add 42 s of delays and three more waits.
    import time

    from tests.cloud_servers import free_port

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    opts = ["--option", f"endpoint_url=http://127.0.0.1:{free_port()}", "--option", "key=k", "--option", "secret=s",
            "--option", "first_contact_seconds=3"]
    for args in (["snapshots", "--repo", "s3://backups/repo"], ["backup", str(source), "--repo", "s3://backups/repo"]):
        started = time.monotonic()
        proc = subprocess.run([BACKUPFLOW, *args, *opts], env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 9, proc.stderr
        # (lines before it, if any, are the retry layer's "retry N in S s" notes)
        assert lines[-1].startswith("backupflow: No answer from s3://backups/repo within 3 s"), proc.stderr
        assert "Traceback" not in proc.stderr and elapsed < 30, (elapsed, args[0])
