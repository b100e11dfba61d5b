"""SIGKILL during cleanup: the engine steps the cleanup flow runs after approval (plan, forget,
prune) in a child process killed at random moments. After every kill the repository verifies
clean with --read-data, every snapshot the policy keeps is there and restores byte for byte,
and running the cleanup again completes it. (The flow adds only the approval before these
steps, and the CLI's kill is the same process dying: tests/flows/test_cleanup_flow.py.)"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage import Repository, RetentionPolicy
from storage.repository import ForgetPlan
from tests.snapshot_clock import backdate
from tests.treegen import diff_fingerprints, fingerprint

ROOT = Path(__file__).resolve().parents[2]
KILLS = 4
POLICY = dict(retention_days=30, minimum=0)

CHILD = r"""
import sys
from storage import Repository, RetentionPolicy
from storage.repository import ForgetPlan
repo = Repository.open(sys.argv[1])
print("ready", flush=True)
plan = repo.plan_cleanup(RetentionPolicy(retention_days=30, minimum=0))
if plan.forget:
    repo.forget(ForgetPlan(**plan.forget))
repo.prune()
print("done", flush=True)
"""


def _old_chains(url: str, src: Path, rng: random.Random, days: int) -> None:
    """Two chains of source ``src`` (a full and an incremental each), made ``days`` ago."""
    repo = Repository.open(url)
    made = []
    for _ in range(2):
        for name in ("a", "b", "c"):
            (src / f"{name}.bin").write_bytes(rng.randbytes(rng.choice((60_000, 400_000))))
        made.append(repo.backup(str(src), type="full").snapshot_id)
        (src / "new.bin").write_bytes(rng.randbytes(200_000))
        made.append(repo.backup(str(src)).snapshot_id)
    backdate(url, {sid: days - n for n, sid in enumerate(made)})


def _kill_child(url: str, delay: float) -> str:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == -signal.SIGKILL:
        return "done first" if "done" in out else "killed"
    assert proc.returncode == 0 and "Traceback" not in err, err
    return "done first"


def _check(url: str, kept: dict[str, object], work: Path, context: str) -> None:
    repo = Repository.open(url)
    assert set(kept) <= set(repo.snapshots.ids()), f"{context}: a snapshot the policy keeps was lost"
    report = repo.verify(read_data=True)
    assert report.ok, f"{context}: {report.problems}"
    for sid, expected in kept.items():
        out = work / "check"
        repo.restore(sid, str(out))
        assert not diff_fingerprints(expected, fingerprint(out)), f"{context}: {sid[:8]} restores wrongly"
        shutil.rmtree(out)


def test_sigkill_at_random_points_of_a_cleanup_loses_nothing_it_keeps(tmp_path):
    rng = random.Random(os.getpid())
    url = str(tmp_path / "repo")
    Repository.init(url, pack_size_mib=1)
    kept_src, old_src = tmp_path / "kept", tmp_path / "old"
    kept_src.mkdir()
    old_src.mkdir()
    (kept_src / "k.bin").write_bytes(rng.randbytes(300_000))
    kept = {Repository.open(url).backup(str(kept_src)).snapshot_id: fingerprint(kept_src)}
    (kept_src / "k2.bin").write_bytes(rng.randbytes(100_000))
    kept[Repository.open(url).backup(str(kept_src)).snapshot_id] = fingerprint(kept_src)

    outcomes, window = [], 0.5
    while outcomes.count("killed") < KILLS and len(outcomes) < 3 * KILLS:
        _old_chains(url, old_src, rng, days=200 + 10 * len(outcomes))
        outcome = _kill_child(url, rng.uniform(0, window))
        window *= 0.7 if outcome == "done first" else 1.1
        outcomes.append(outcome)
        _check(url, kept, tmp_path, f"after kill {len(outcomes)} ({outcome})")
    assert outcomes.count("killed") >= 1, f"no kill landed during a cleanup: {outcomes}"

    # run again, the cleanup completes: only what the policy keeps is left, and its data
    repo = Repository.open(url)
    plan = repo.plan_cleanup(RetentionPolicy(**POLICY))
    if plan.forget:
        repo.forget(ForgetPlan(**plan.forget))
    repo.prune()
    assert set(Repository.open(url).snapshots.ids()) == set(kept)
    assert Repository.open(url).plan_cleanup(RetentionPolicy(**POLICY)).remove == []
    assert not list((tmp_path / "repo").rglob(".tmp-*"))
    _check(url, kept, tmp_path, "after the rerun")
