"""Side by side: backupflow (engine API), restic and borg on the same seeded workspace, in one run.

    python -m bench.run [--scale 1.0] [--repeat 3] [--out FILE.md] [--tools backupflow,restic,borg]

``backupflow`` is the engine on an encrypted repository (the default, and restic always
encrypts); ``backupflow-plain`` is the same engine unencrypted, so
``--tools backupflow,backupflow-plain --subject backupflow`` measures what encryption costs.

Per repeat, every tool gets a fresh repository and the same steps, in a rotating tool order:
first backup, unchanged re-backup, (the workspace is mutated once, ~2 % of files) backup after
mutation, full restore of the latest snapshot into an empty directory (compared byte-for-byte
with the source afterwards, outside the timing), verify with data read. Before every timed
step that reads the workspace (first backup, backup after mutation) the whole workspace is
read once, so each tool sees a warm page cache (dropping the cache is not reliably possible
here). This has to happen before each tool, not once per repeat: borg drops the pages of every
file it reads (posix_fadvise DONTNEED), so the tool after borg would otherwise read from disk.
Every timed step starts after a sync(), so the write-back of an earlier step does not land in
it. The report gives medians over repeats and the ratio of the subject (backupflow) to the
better of the peers per metric.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import dataset, e2e, growth, measure
from bench.runner_cli import BackupflowCLI, BackupflowCLIPlain
from bench.tools import TOOLS, Tool

TOOLS = {**TOOLS, BackupflowCLI.name: BackupflowCLI, BackupflowCLIPlain.name: BackupflowCLIPlain}

# metric key -> (label, unit, target ratio, compared against "best" peer or one named peer)
METRICS = {
    "first_backup_s": ("First backup", "s", 1.0, "best"),
    "rebackup_s": ("Unchanged re-backup", "s", 1.0, "best"),
    "mutation_backup_s": ("Backup after mutation", "s", 1.0, "best"),
    "mutation_growth": ("Repository growth from the mutation", "MiB", 1.1, "best"),
    "restore_s": ("Full restore", "s", 0.9, "best"),
    "verify_s": ("Verify with data read", "s", 1.0, "best"),
    "repo_size": ("Repository size (3 snapshots)", "MiB", 1.0, "best"),
    "first_backup_rss": ("Peak memory, first backup", "MiB", 1.0, "restic"),
    "mutation_backup_rss": ("Peak memory, backup after mutation", "MiB", 1.0, "restic"),
    "peak_rss": ("Peak memory, any step", "MiB", 1.0, "restic"),
}
MiB = 1 << 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _step(tool: Tool, cmd_cwd: tuple[list[str], Path | None]) -> measure.Measurement:
    cmd, cwd = cmd_cwd
    # Flush the previous step's dirty pages (a restored GiB, a deleted tree) first, so their
    # write-back does not land inside the next tool's timing.
    os.sync()
    return measure.run(cmd, env=tool.env(), cwd=cwd, probe=getattr(tool, "probe", None))


def run_repeat(tools: list[Tool], base: Path, work: Path, mutate_seed: int, results: dict) -> dict:
    """One repeat: every tool through every step on a fresh copy of the workspace."""
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    subprocess.run(["cp", "-a", str(base), str(src)], check=True)
    repos = {t.name: work / f"repo-{t.name}" for t in tools}
    sizes: dict[str, dict[str, int]] = {t.name: {} for t in tools}
    rows: dict[str, dict] = {t.name: {"rss": {}, "load": []} for t in tools}

    def record(tool: Tool, key: str, m: measure.Measurement) -> None:
        rows[tool.name][key] = m.wall_s
        rows[tool.name]["rss"][key] = m.peak_rss
        rows[tool.name]["load"].append(os.getloadavg()[0])
        runner = ""
        if m.runner_cpu_s is not None:  # the resident runner's share (bench/runner_cli.py)
            rows[tool.name].setdefault("runner_cpu_s", {})[key] = m.runner_cpu_s
            rows[tool.name].setdefault("runner_growth", {})[key] = m.runner_growth
            runner = f"  (runner cpu {m.runner_cpu_s:.2f} s, +{(m.runner_growth or 0) / MiB:.1f} MiB)"
        log(f"  {tool.name:10} {key:18} {m.wall_s:8.2f} s  peak {m.peak_rss / MiB:7.1f} MiB{runner}")

    for tool in tools:
        shutil.rmtree(repos[tool.name], ignore_errors=True)
        _step(tool, tool.init(repos[tool.name]))
        measure.warm_up(src)  # borg evicts what it reads: each tool starts warm (module docstring)
        record(tool, "first_backup_s", _step(tool, tool.backup(repos[tool.name], src)))
        sizes[tool.name]["first"] = measure.tree_size(repos[tool.name])
        record(tool, "rebackup_s", _step(tool, tool.backup(repos[tool.name], src)))
        sizes[tool.name]["rebackup"] = measure.tree_size(repos[tool.name])
    summary = dataset.mutate(src, mutate_seed)
    log(f"  mutated: {summary}")
    for tool in tools:
        measure.warm_up(src)
        record(tool, "mutation_backup_s", _step(tool, tool.backup(repos[tool.name], src)))
        sizes[tool.name]["mutation"] = measure.tree_size(repos[tool.name])
    for tool in tools:
        target = work / f"restore-{tool.name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        record(tool, "restore_s", _step(tool, tool.restore(repos[tool.name], target)))
        diff = measure.compare_trees(src, tool.restored_root(target, src))
        rows[tool.name]["restore_check"] = diff.summary()
        rows[tool.name]["restore_identical"] = diff.identical
        log(f"  {tool.name:10} restored tree: {diff.summary()}")
        # Kept until the repeat ends: a restore right after a deleted GiB ran ~1.5x slower
        # (8.5-8.7 s against 5.1-6.7 s, one tool, same repository), for whichever tool came next.
    for tool in tools:
        record(tool, "verify_s", _step(tool, tool.verify(repos[tool.name])))
    for tool in tools:
        row, s = rows[tool.name], sizes[tool.name]
        row["mutation_growth"] = (s["mutation"] - s["rebackup"]) / MiB
        row["repo_size"] = s["mutation"] / MiB
        row["first_backup_size"] = s["first"] / MiB
        row["first_backup_rss"] = row["rss"]["first_backup_s"] / MiB
        row["mutation_backup_rss"] = row["rss"]["mutation_backup_s"] / MiB
        row["peak_rss"] = max(row["rss"].values()) / MiB
        results.setdefault(tool.name, []).append(row)
        shutil.rmtree(repos[tool.name], ignore_errors=True)
        shutil.rmtree(work / f"restore-{tool.name}", ignore_errors=True)
    return summary


def medians(results: dict) -> dict[str, dict[str, float]]:
    return {name: {k: statistics.median(r[k] for r in rows) for k in METRICS} for name, rows in results.items()}


def ratio(med: dict, subject: str, key: str) -> tuple[float | None, str]:
    """subject / reference for one metric, and the name of the reference."""
    versus = METRICS[key][3]
    peers = {n: m[key] for n, m in med.items() if n != subject}
    if subject not in med or not peers:
        return None, ""
    ref_name = versus if versus in peers else min(peers, key=peers.get)
    ref = peers[ref_name]
    if ref <= 0:
        return None, ref_name
    return med[subject][key] / ref, ref_name


def paired_ratio(results: dict, subject: str, key: str) -> float | None:
    """Median over repeats of subject / reference within the same repeat: the tools of one
    repeat run minutes apart, so this ratio shrugs off load that comes and goes."""
    versus = METRICS[key][3]
    peers = [n for n in results if n != subject]
    if subject not in results or not peers:
        return None
    out = []
    for i, row in enumerate(results[subject]):
        ref = results[versus][i][key] if versus in peers else min(results[n][i][key] for n in peers)
        if ref > 0:
            out.append(row[key] / ref)
    return statistics.median(out) if out else None


def _fmt(v: float, unit: str) -> str:
    return f"{v:.2f}" if unit == "s" or v < 10 else f"{v:.0f}"


def _cell(rows: list[dict], med: dict, key: str, unit: str) -> str:
    """The median, and the spread over repeats when there is one (this machine is shared)."""
    lo, hi = min(r[key] for r in rows), max(r[key] for r in rows)
    if len(rows) < 3 or hi - lo < 0.05 * max(abs(hi), 1e-9):
        return _fmt(med[key], unit)
    return f"{_fmt(med[key], unit)} ({_fmt(lo, unit)}-{_fmt(hi, unit)})"


def report(results: dict, subject: str, info: dict) -> str:
    med = medians(results)
    names = list(med)
    lines = [f"| Metric (median, and min-max over repeats) | {' | '.join(names)} | {subject} / reference "
             f"| Paired ratio | Target | Met |", "|---" * (len(names) + 5) + "|"]
    for key, (label, unit, target, versus) in METRICS.items():
        r, ref_name = ratio(med, subject, key)
        vals = " | ".join(_cell(results[n], med[n], key, unit) for n in names)
        ref_txt = "restic" if versus == "restic" else "best"
        rtxt = f"{r:.3f} (vs {ref_name})" if r is not None else "n/a"
        met = "n/a" if r is None else ("yes" if r <= target else "**no**")
        pr = paired_ratio(results, subject, key)
        ptxt = f"{pr:.3f}" if pr is not None else "n/a"
        lines.append(f"| {label} ({unit}) | {vals} | {rtxt} | {ptxt} | <= {target} vs {ref_txt} | {met} |")
    checks = ", ".join(
        f"{n}: {sum(r['restore_identical'] for r in rows)}/{len(rows)} identical"
        + ("" if all(r["restore_check"] == "identical" for r in rows) else f" ({rows[-1]['restore_check']})")
        for n, rows in results.items())
    lines += ["", f"Restored trees compared byte-for-byte with the source: {checks}."]
    for name, why in info.get("unavailable", {}).items():
        lines.append(f"\n{name} was not measured: {why}.")
    loads = sorted(x for rows in results.values() for r in rows for x in r.get("load", []))
    if loads:
        lines.append(f"\n1-minute load average right after the timed steps: median {statistics.median(loads):.1f}, "
                     f"max {loads[-1]:.1f} on {os.cpu_count()} cores (above {os.cpu_count()}: something else "
                     "was competing for the CPU).")
    if info.get("versions"):
        lines.append("\nTools: " + "; ".join(info["versions"].values()) + ".")
    lines.append(f"\nMedians of {info['repeat']} repeat(s); dataset scale {info['scale']}: "
                 f"{info['dataset']['files']} files, {info['dataset']['bytes'] / MiB:.0f} MiB; "
                 f"mutation: {info.get('mutation', {})}.")
    return "\n".join(lines) + "\n"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    disk = subprocess.run(["df", "-h", "--output=source,fstype,size", tempfile.gettempdir()],
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(int(mem) / (1 << 20), 1),
            "disk": " ".join(disk.split()), "kernel": platform.release(), "python": sys.version.split()[0]}


@contextlib.contextmanager
def runners_up(tools: list[Tool]):
    """The CLI tool's runner (and local Prefect server) up for the whole run, stopped after."""
    started = []
    try:
        for tool in tools:
            if isinstance(tool, BackupflowCLI):
                tool.start()
                started.append(tool)
        yield
    finally:
        for tool in started:
            tool.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tools", default="backupflow,restic,borg")
    p.add_argument("--subject", default="backupflow", help="the tool whose ratios are reported")
    p.add_argument("--out", help="write the Markdown report here as well")
    p.add_argument("--json-out", help="write raw results (every repeat) as JSON here")
    p.add_argument("--workdir", help="where datasets and repositories go (default: a new temp dir)")
    p.add_argument("--e2e", action="store_true", help="also measure CLI + Prefect server overhead")
    p.add_argument("--e2e-pairs", type=int, default=5, metavar="N",
                   help="interleaved engine/CLI pairs for --e2e (its differences are noisier than the steps)")
    p.add_argument("--grow", type=int, default=0, metavar="N",
                   help="also record peak memory over N+1 backups of distinct workspaces into one repository")
    p.add_argument("--engine-rev", default="HEAD",
                   help="git revision of storage/ to benchmark (a frozen copy; 'worktree' for the live tree)")
    p.add_argument("--report-from", metavar="JSON", help="only print the report of an earlier --json-out file")
    args = p.parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        text = report(saved["results"], args.subject, saved["info"])
        if saved["info"].get("growth"):
            text += "\n" + growth.report(saved["info"]["growth"])
        if saved["info"].get("e2e"):
            text += "\n" + e2e.report(saved["info"]["e2e"])
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="backupflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tools, unavailable = [], {}
    for name in args.tools.split(","):
        scratch = work / "scratch" / name.strip()
        if name.strip() in ("backupflow", "backupflow-plain"):
            tool = TOOLS[name.strip()](scratch, None if args.engine_rev == "worktree" else args.engine_rev)
        else:
            tool = TOOLS[name.strip()](scratch)
        why = tool.available()
        if why:
            unavailable[tool.name] = why
            log(f"skipping {tool.name}: {why}")
        else:
            tools.append(tool)
    base = work / "dataset"
    shutil.rmtree(base, ignore_errors=True)
    t0 = time.perf_counter()
    info = {"scale": args.scale, "repeat": args.repeat, "dataset": dataset.generate(base, args.seed, args.scale),
            "unavailable": unavailable, "machine": machine(), "versions": {t.name: t.version() for t in tools},
            "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])}
    log(f"dataset generated in {time.perf_counter() - t0:.1f} s: {info['dataset']}")
    results: dict[str, list] = {}
    with runners_up(tools):  # the CLI's resident runner starts before any timed step
        for r in range(args.repeat):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            log(f"repeat {r + 1}/{args.repeat}, order {[t.name for t in order]}")
            info["mutation"] = run_repeat(order, base, work, args.seed + 1, results)
        results = {t.name: results[t.name] for t in tools}  # stable column order
        text = report(results, args.subject, info)
        if args.grow:
            info["growth"] = growth.measure_growth(tools, base, work, args.scale, args.grow, args.seed)
            text += "\n" + growth.report(info["growth"])
    if args.e2e:
        e2e_text, info["e2e"] = e2e.run_and_report(work, base, args.e2e_pairs)
        text += "\n" + e2e_text
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    json_out = Path(args.json_out) if args.json_out else work / "results.json"
    json_out.write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    log(f"raw results: {json_out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
