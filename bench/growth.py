"""Peak memory as the repository grows: one fresh repository per tool receives the workspace,
then N further workspaces of the same size generated from other seeds (new content, so the
chunk index grows by about the same amount each time). A tool whose memory follows the index
shows a rising column; the target is a flat one."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench import dataset, measure
from bench.tools import Tool

MiB = 1 << 20


def measure_growth(tools: list[Tool], base: Path, work: Path, scale: float, steps: int, seed: int) -> dict:
    sources = [base]
    for k in range(steps):
        extra = work / f"grow-{k}"
        shutil.rmtree(extra, ignore_errors=True)
        dataset.generate(extra, seed + 1000 + k, scale)
        sources.append(extra)
    out: dict[str, list[dict]] = {}
    for tool in tools:
        repo = work / f"grow-repo-{tool.name}"
        shutil.rmtree(repo, ignore_errors=True)
        cmd, cwd = tool.init(repo)
        measure.run(cmd, env=tool.env(), cwd=cwd)
        rows = out.setdefault(tool.name, [])
        for src in sources:
            measure.warm_up(src)
            before = measure.tree_size(repo)
            cmd, cwd = tool.backup(repo, src)
            m = measure.run(cmd, env=tool.env(), cwd=cwd)
            rows.append({"repo_before_mib": before / MiB, "peak_rss_mib": m.peak_rss / MiB, "wall_s": m.wall_s})
            print(f"  growth {tool.name:10} repo {before / MiB:7.0f} MiB -> peak {m.peak_rss / MiB:7.1f} MiB, "
                  f"{m.wall_s:.2f} s", file=sys.stderr, flush=True)
        shutil.rmtree(repo, ignore_errors=True)
    for k in range(steps):
        shutil.rmtree(work / f"grow-{k}", ignore_errors=True)
    return out


def report(growth: dict) -> str:
    names = list(growth)
    n = len(next(iter(growth.values())))
    lines = ["Peak memory (MiB) of backing up one more workspace of the same scale (new content each time), "
             "by the repository size before that backup:", "",
             "| Backup | " + " | ".join(f"{t}: repo before (MiB) | {t}: peak (MiB)" for t in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for i in range(n):
        cells = " | ".join(f"{growth[t][i]['repo_before_mib']:.0f} | {growth[t][i]['peak_rss_mib']:.0f}" for t in names)
        lines.append(f"| {i + 1} | {cells} |")
    flat = ", ".join(f"{t}: last/first {growth[t][-1]['peak_rss_mib'] / growth[t][0]['peak_rss_mib']:.2f}"
                     for t in names)
    return "\n".join(lines) + f"\n\nGrowth of peak memory from the first to the last backup: {flat}.\n"
