"""End to end: `backupflow backup SOURCE --repo URL --json` through the CLI against a running
Prefect server, against the engine call alone on the same data, to price the orchestration.

Both sides are separate processes on a repository initialised beforehand (not timed): the
engine side is `python -m bench.engine_driver backup`, the CLI side the installed `backupflow`
command with PREFECT_API_URL pointing at a Prefect server started here (as the test suite does).
Overhead per run = the median over interleaved pairs of CLI minus engine, for a first backup and
for an unchanged re-backup (where the data work is small, so the orchestration share is clearest).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench import measure
from bench.tools import Backupflow
from tests.prefect_server import PrefectServer

TARGET_OVERHEAD_S = 1.5


def cli_path() -> Path:
    return Path(sys.executable).with_name("backupflow")


def cli_pending() -> str | None:
    """None when `backupflow backup` exists, otherwise why the end-to-end part cannot run."""
    if not cli_path().exists():
        return f"{cli_path()} is not installed"
    probe = subprocess.run([str(cli_path()), "backup", "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or "--repo" not in probe.stdout:
        return "the `backupflow backup` command is not available yet"
    return None


def measure_overhead(work: Path, source: Path, pairs: int) -> dict:
    """``pairs`` interleaved pairs of engine and CLI runs (first backup, then unchanged re-backup),
    the order alternating from pair to pair so that a drift of the machine (this disk slows as
    it fills) falls on both sides alike. The overhead is the median of the per-pair differences."""
    engine = Backupflow(work / "scratch" / "e2e", rev=None)  # the same code the installed CLI runs
    server = PrefectServer(work / "prefect-home").start()
    try:
        # The CLI goes through its resident runner, as users' does: one of this run's own, started
        # by an untimed first command and stopped at the end.
        # encrypted on both sides, with the same password (the CLI's from its environment)
        cli_env = {**{k: v for k, v in engine.env().items() if k != "BACKUPFLOW_PASSWORD_FILE"}, **server.env(),
                   "BACKUPFLOW_RUNTIME_DIR": str(work / "e2e-runner"), "BACKUPFLOW_PASSWORD": engine.password or ""}
        warm = work / "e2e-warm"
        warm.mkdir(exist_ok=True)
        (warm / "f").write_text("warm\n")
        measure.run([str(cli_path()), "backup", str(warm), "--repo", str(work / "e2e-warm-repo")],
                    env=cli_env, cwd=work)
        times: dict[str, list[float]] = {"engine_first": [], "engine_again": [], "cli_first": [], "cli_again": []}
        kept: list[Path] = []
        for i in range(pairs):
            for side in (("engine", "cli") if i % 2 == 0 else ("cli", "engine")):
                repo = work / f"e2e-repo-{side}-{i}"
                shutil.rmtree(repo, ignore_errors=True)
                cmd, cwd = engine.init(repo)
                measure.run(cmd, env=engine.env(), cwd=cwd)
                measure.warm_up(source)  # a borg step before may have evicted it (bench/run.py)
                for step in ("first", "again"):
                    if side == "engine":
                        cmd, cwd = engine.backup(repo, source)
                        m = measure.run(cmd, env=engine.env(), cwd=cwd)
                    else:
                        # From the work folder: a config/config.toml in the caller's folder (this
                        # checkout has one, with excludes) would make the CLI do other work.
                        m = measure.run([str(cli_path()), "backup", str(source), "--repo", str(repo), "--json"],
                                        env=cli_env, cwd=work)
                        out = json.loads(m.stdout.strip().splitlines()[-1])
                        assert out.get("snapshot_id") and out.get("flow_run_id"), out
                    times[f"{side}_{step}"].append(m.wall_s)
                    print(f"  e2e {side:6} {step:5} {m.wall_s:7.2f} s", file=sys.stderr, flush=True)
                # Kept until the end: deleting a repository slows the writes of the next step
                # for seconds (this disk is mounted with discard).
                kept.append(repo)
    finally:
        subprocess.run([str(cli_path()), "runner", "stop"], env=cli_env, capture_output=True, timeout=300)
        server.stop()
        for repo in kept:
            shutil.rmtree(repo, ignore_errors=True)
    return summarise(times)


def summarise(times: dict[str, list[float]]) -> dict:
    result: dict = {"times": times, "medians": {k: statistics.median(v) for k, v in times.items()}}
    for step in ("first", "again"):
        diffs = [c - e for c, e in zip(times[f"cli_{step}"], times[f"engine_{step}"], strict=True)]
        result[f"differences_{step}"] = diffs
        result[f"overhead_{step}"] = statistics.median(diffs)
    return result


def report(result: dict) -> str:
    med = result["medians"]
    rows = ["| Run | Engine alone, median (s) | CLI + Prefect server, median (s) | Overhead, median of pairs (s) "
            "| Overhead per pair (s) | Target | Met |",
            "|---|---|---|---|---|---|---|"]
    for step, label in (("first", "First backup"), ("again", "Unchanged re-backup")):
        over = result[f"overhead_{step}"]
        pairs = ", ".join(f"{d:.2f}" for d in result[f"differences_{step}"])
        rows.append(f"| {label} | {med[f'engine_{step}']:.2f} | {med[f'cli_{step}']:.2f} | {over:.2f} | {pairs} "
                    f"| <= {TARGET_OVERHEAD_S} | {'yes' if over <= TARGET_OVERHEAD_S else '**no**'} |")
    return "\n".join(rows) + "\n"


def run_and_report(work: Path, source: Path, pairs: int) -> tuple[str, dict | None]:
    why = cli_pending()
    if why:
        return f"End-to-end orchestration overhead: pending ({why}).\n", None
    result = measure_overhead(work, source, pairs)
    return f"End to end through the CLI against a running Prefect server ({pairs} interleaved pairs):\n\n" + \
        report(result), result


if __name__ == "__main__":  # python -m bench.e2e SOURCE_DIR [PAIRS]
    _work = Path(os.environ.get("BENCH_WORKDIR", "/tmp/backupflow-e2e"))
    _work.mkdir(parents=True, exist_ok=True)
    print(run_and_report(_work, Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 5)[0])
