"""The reliability suite (README "Guarantees"): SIGKILL at random points of backup, prune,
restore and archive, and rounds of backups, prunes, verifies and restores running at once.

After every kill and every round: `verify --read-data` is clean and every snapshot that should
exist does, restoring byte for byte what its source held when it was taken; a snapshot that left
the repository for the archive tier has a published archive that reads back whole. The engine runs in
a child process that is killed with SIGKILL at a random moment of its work (after its imports,
so the kill lands in the operation); two more kills go through the CLI. Counts are printed.

    BACKUPFLOW_RELIABILITY_ROUNDS=50 .venv/bin/python -m pytest -q tests/test_reliability.py
runs the longer version (default 10 kills per kind, 5 concurrent rounds); a failing run prints
its seed, and BACKUPFLOW_RELIABILITY_SEED=<seed> repeats it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from storage import Repository
from storage.archive.writer import published, verify_stored
from storage.backend import open_backend
from storage.errors import Locked
from tests.flows.cli_process import cli_env, run, start
from tests.suite_password import open_repository
from tests.treegen import Fingerprint, diff_fingerprints, fingerprint

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BACKUPFLOW_RELIABILITY_ROUNDS", "10"))
SEED = int(os.environ.get("BACKUPFLOW_RELIABILITY_SEED", str(random.SystemRandom().randrange(1 << 30))))

# The child: import, say "ready", then run one operation; SIGKILL arrives at a random moment.
CHILD = r"""
import sys
from storage import Repository
op, url, *args = sys.argv[1:]
repo = Repository.open(url)
print("ready", flush=True)
if op == "backup":
    repo.backup(args[0], type=args[1] or None)
elif op == "prune":
    repo.prune()
elif op == "restore":
    repo.restore(args[0], args[1])
elif op == "archive":  # the archive flow's steps: oldest chain to .tar.gz, checked, published; forget; prune
    from storage.archive.writer import check_archive, publish_archive, published, write_archive
    from storage.backend import open_backend
    dest = open_backend(args[0])
    snaps = repo.snapshots.all()
    oldest = [s for s in snaps if s.type == "full"][0].chain
    for head in [s for s in snaps if s.chain == oldest]:
        if published(dest, head.id) is None:
            snap = repo.snapshots.load(head.id)
            written = write_archive(repo, snap, dest, 6)
            check_archive(dest, written, snap)
            publish_archive(repo, snap, dest, written, 6)
    repo.forget(repo.plan_forget([s.id for s in snaps if s.chain == oldest], chain=True))
    repo.prune()
print("done", flush=True)
"""


def _write_tree(rng: random.Random, root: Path, files: int = 24) -> None:
    for i in range(files):
        path = root / f"d{i % 4}" / f"f{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        _rewrite(rng, path)
    (root / "link").symlink_to("d0/f00.bin")


def _rewrite(rng: random.Random, path: Path) -> None:
    size = rng.choice((0, 1, 4_000, 90_000, 300_000, 700_000))
    data = rng.randbytes(size // 2) + bytes(size - size // 2)  # half random, half compressible
    path.write_bytes(data)


def _mutate(rng: random.Random, root: Path) -> None:
    files = sorted(p for p in root.rglob("*.bin"))
    for path in rng.sample(files, 3):
        _rewrite(rng, path)
    if rng.random() < 0.3 and len(files) > 10:
        rng.choice(files).unlink()
    if rng.random() < 0.5:
        _rewrite(rng, root / f"d{rng.randrange(4)}" / f"new{rng.randrange(1000)}.bin")


@dataclass
class World:
    """A repository, its source, and what every snapshot must restore."""

    url: str
    src: Path
    work: Path
    rng: random.Random
    expected: dict[str, Fingerprint] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    restores: int = 0

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def backup(self, type: str | None = None) -> str:
        snap = open_repository(self.url).backup(str(self.src), type=type).snapshot_id
        self.expected[snap] = fingerprint(self.src)
        return snap

    def forget_oldest_chain(self) -> None:
        repo = open_repository(self.url)
        fulls = [s for s in repo.snapshots.all() if s.type == "full"]
        if len(fulls) < 2:
            return
        plan = repo.plan_forget([fulls[0].id], chain=True)
        repo.forget(plan)
        for sid in plan.snapshots:
            self.expected.pop(sid, None)

    def check(self, context: str) -> None:
        """Verify clean, nothing lost, every snapshot restores byte for byte."""
        repo = open_repository(self.url)
        present = set(repo.snapshots.ids())
        lost = set(self.expected) - present
        assert not lost, f"{context}: snapshot(s) {sorted(s[:8] for s in lost)} were lost (seed {SEED})"
        report = repo.verify(read_data=True)
        assert report.ok, f"{context}: verify found {report.problems} (seed {SEED})"
        for sid, expected in self.expected.items():
            out = self.work / f"check-{sid[:12]}"
            repo.restore(sid, str(out))
            problems = diff_fingerprints(expected, fingerprint(out))
            shutil.rmtree(out)
            self.restores += 1
            assert not problems, f"{context}: snapshot {sid[:8]} restores wrongly: {problems} (seed {SEED})"


@pytest.fixture()
def world(tmp_path) -> World:
    rng = random.Random(SEED)
    url = str(tmp_path / "repo")
    Repository.init(url, pack_size_mib=1)
    src = tmp_path / "src"
    _write_tree(rng, src)
    w = World(url, src, tmp_path, rng)
    w.backup()
    return w


def _run_child(world: World, args: list[str], delay: float) -> str:
    """Start the engine in a child, SIGKILL it ``delay`` s after it is ready; what happened."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        assert ready.strip() == "ready", f"the child failed to start: {ready}{proc.stderr.read()}"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == -signal.SIGKILL:
        return "done first" if "done" in out else "killed"
    # Ending on its own before the kill is fine only with success, or with a clean refusal.
    assert proc.returncode == 0 and "Traceback" not in err, f"the child failed on its own: {err}"
    return "done first"


def _new_snapshots(world: World, before: set[str]) -> None:
    """A killed backup that got as far as its manifest made a snapshot: of the current source."""
    for sid in set(open_repository(world.url).snapshots.ids()) - before:
        world.expected[sid] = fingerprint(world.src)


class Window:
    """How long after "ready" a kill may land: it shrinks when the operation ended first and
    grows when the kill came early, so kills spread over the whole operation."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def pick(self, rng: random.Random) -> float:
        return rng.uniform(0, self.seconds)

    def learn(self, outcome: str) -> None:
        self.seconds *= 0.7 if outcome == "done first" else 1.1


def _kills(world: World, kind: str, step) -> None:
    """Run ``step(window) -> outcome`` until ROUNDS kills landed mid-operation (at most 3x)."""
    killed = attempts = 0
    window = Window(0.3)
    while killed < ROUNDS and attempts < 3 * ROUNDS:
        attempts += 1
        outcome = step(window.pick(world.rng))
        window.learn(outcome)
        killed += outcome == "killed"
        world.count(f"{kind} {outcome}")
        world.check(f"after {kind} kill {attempts} ({outcome})")


def _backup_step(world: World, delay: float) -> str:
    _mutate(world.rng, world.src)
    before = set(open_repository(world.url).snapshots.ids())
    type = "full" if world.rng.random() < 0.25 else ""
    outcome = _run_child(world, ["backup", world.url, str(world.src), type], delay)
    _new_snapshots(world, before)
    if len(world.expected) > 5:
        world.forget_oldest_chain()
    return outcome


def _prune_step(world: World, delay: float) -> str:
    _mutate(world.rng, world.src)
    world.backup(type="full")  # a second chain, so the oldest can go and prune has work
    world.forget_oldest_chain()
    return _run_child(world, ["prune", world.url], delay)


def _restore_step(world: World, delay: float) -> str:
    sid = world.rng.choice(sorted(world.expected))
    target = world.work / "killed-restore"
    outcome = _run_child(world, ["restore", world.url, sid, str(target)], delay)
    if outcome == "killed" and target.exists():  # the same restore again, over what the killed one left
        open_repository(world.url).restore(sid, str(target))
        left = [p.name for p in target.rglob(".bf-restore-*")]
        assert not left, f"a killed restore's temporary files outlived the next restore: {left}"
    if outcome == "done first" or target.exists():
        assert not diff_fingerprints(world.expected[sid], fingerprint(target))
    shutil.rmtree(target, ignore_errors=True)
    return outcome


def _archive_step(world: World, delay: float) -> str:
    _mutate(world.rng, world.src)
    world.backup(type="full")  # a second chain, so the oldest can be archived
    dest = world.work / "archives"
    outcome = _run_child(world, ["archive", world.url, str(dest)], delay)
    # A snapshot leaves the repository only with a published archive that reads back whole.
    archives = open_backend(str(dest))
    present = set(Repository.open(world.url).snapshots.ids())
    for sid in [s for s in world.expected if s not in present]:
        meta = published(archives, sid)
        assert meta is not None, f"snapshot {sid[:8]} left the repository without its archive (seed {SEED})"
        assert verify_stored(archives, meta) is None, f"the archive of {sid[:8]} is damaged (seed {SEED})"
        world.expected.pop(sid)
        world.count("archived")
    return outcome


def _report(capsys, title: str, world: World, started: float) -> None:
    with capsys.disabled():
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(world.counts.items()))
        print(f"\nreliability [{title}] seed {SEED}, {ROUNDS} per kind, {time.monotonic() - started:.0f} s: {counts}; "
              f"verify clean and {world.restores} snapshot restores byte-identical after every step")


def test_sigkill_at_random_points_of_backup_prune_restore_and_archive(world, capsys):
    started = time.monotonic()
    _kills(world, "backup", partial(_backup_step, world))
    _kills(world, "prune", partial(_prune_step, world))
    _kills(world, "restore", partial(_restore_step, world))
    _kills(world, "archive", partial(_archive_step, world))
    _report(capsys, "SIGKILL", world, started)
    for kind in ("backup", "prune", "restore", "archive"):
        assert world.counts.get(f"{kind} killed", 0) >= ROUNDS, f"too few kills landed mid-{kind}: {world.counts}"
    # The leftovers of every killed run are gone after the next backup: no stale lease, no temporary.
    world.backup()
    repo_dir = world.work / "repo"
    assert not list(repo_dir.rglob(".tmp-*")), "a killed run's temporary file outlived the next backup"
    assert not list((repo_dir / "locks").iterdir()), "a killed run's lease outlived the next backup"


def _round(world: World, other: Path, pick: str, target: Path) -> dict[str, object]:
    """Two backups, a prune, a verify and a restore started together; each one's result."""
    ops = {
        "backup": partial(open_repository(world.url).backup, str(world.src)),
        "backup2": partial(open_repository(world.url).backup, str(other)),
        "prune": open_repository(world.url).prune,
        "verify": partial(open_repository(world.url).verify, read_data=True),
        "restore": partial(open_repository(world.url).restore, pick, str(target)),
    }
    results: dict[str, object] = {}
    barrier = threading.Barrier(len(ops))
    # Staggered starts: sometimes the prune is first and the others wait for it, sometimes it
    # comes while they run and stands down.
    delays = {name: world.rng.uniform(0, 0.3) for name in ops}

    def run(name: str) -> None:
        barrier.wait()
        time.sleep(delays[name])
        try:
            results[name] = ops[name]()
        except BaseException as exc:  # judged by the caller
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def test_backups_prunes_verifies_and_restores_at_once(world, capsys):
    started = time.monotonic()
    other = world.work / "src2"
    _write_tree(world.rng, other, files=12)
    for i in range(max(5, ROUNDS // 2)):
        _mutate(world.rng, world.src)
        _mutate(world.rng, other)
        if i % 2:
            world.backup(type="full")
            world.forget_oldest_chain()  # gives the prune of this round something to delete
        before = {"src": fingerprint(world.src), "src2": fingerprint(other)}
        pick = world.rng.choice(sorted(world.expected))
        results = _round(world, other, pick, world.work / f"round-{i}")
        for name, result in results.items():
            if isinstance(result, Locked):
                world.count(f"{name} refused (prune running)" if name != "prune" else "prune refused (others running)")
                continue
            assert not isinstance(result, BaseException), f"round {i + 1}: {name} failed: {result!r} (seed {SEED})"
            world.count(f"{name} done")
        if not isinstance(results["verify"], BaseException):
            assert results["verify"].ok, f"round {i + 1}: false damage: {results['verify'].problems} (seed {SEED})"
        if not isinstance(results["restore"], BaseException):
            assert not diff_fingerprints(world.expected[pick], fingerprint(world.work / f"round-{i}"))
        shutil.rmtree(world.work / f"round-{i}", ignore_errors=True)
        for name, key in (("backup", "src"), ("backup2", "src2")):
            if not isinstance(results[name], BaseException):
                world.expected[results[name].snapshot_id] = before[key]  # no snapshot is lost
        world.check(f"after concurrent round {i + 1}")
    _report(capsys, "concurrent", world, started)
    assert world.counts.get("verify done", 0) and world.counts.get("backup done", 0)


def _kill_when(proc: subprocess.Popen, ready, rng: random.Random, spread: float) -> str:
    deadline = time.monotonic() + 180
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, spread))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return "killed" if proc.returncode == -signal.SIGKILL else f"ended with {proc.returncode} first"


def test_sigkill_of_cli_backup_and_restore(prefect_server, tmp_path, capsys):
    """Two kills through the installed command, engine in the CLI process (no resident runner)."""
    started = time.monotonic()
    rng = random.Random(SEED)
    env = cli_env(prefect_server, tmp_path, BACKUPFLOW_RUNNER="off")
    config = tmp_path / "small-packs.toml"
    config.write_text("[backup]\npack_size_mib = 1\nconnections = 1\n")
    repo_dir = tmp_path / "repo"
    run(["init", "-r", str(repo_dir), "--config", str(config)], env, tmp_path).ok()
    world = World(str(repo_dir), tmp_path / "src", tmp_path, rng)
    _write_tree(rng, world.src, files=80)

    packs = lambda: [p for p in (repo_dir / "data").rglob("*") if p.is_file() and not p.name.startswith(".")]  # noqa: E731
    proc = start(["backup", str(world.src), "-r", str(repo_dir), "--config", str(config)], env, tmp_path)
    world.count("cli backup " + _kill_when(proc, lambda: (repo_dir / "data").exists() and packs(), rng, 0.1))
    _new_snapshots(world, set())
    world.check("after the CLI backup kill")
    world.backup()

    sid = sorted(world.expected)[0]
    target = tmp_path / "killed-restore"
    proc = start(["restore", sid, str(target), "-r", str(repo_dir)], env, tmp_path)
    world.count("cli restore " + _kill_when(proc, lambda: target.exists() and any(target.rglob("*.bin")), rng, 0.2))
    world.check("after the CLI restore kill")
    pruned = run(["prune", "-r", str(repo_dir), "--json"], env, tmp_path).json()  # the killed restore's lease is stale
    assert pruned["packs_deleted"] >= 0
    world.check("after a prune that followed the kills")
    _report(capsys, "CLI", world, started)
