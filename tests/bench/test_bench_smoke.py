"""The benchmark harness at a tiny scale: the dataset has the promised shape and is reproducible,
the mutation touches about 2 % of it, and one run of all three tools yields a report with a
ratio and a verdict per metric and a byte-for-byte restore check. Timings are never asserted."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from bench import dataset
from bench.run import METRICS

ROOT = Path(__file__).resolve().parents[2]
SCALE = 0.02


def fingerprint(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ds") / "ws"
    return root, dataset.generate(root, seed=7, scale=SCALE)


def test_dataset_has_the_workspace_mix(tree):
    root, summary = tree
    files = dataset.list_files(root)
    sizes = [p.stat().st_size for p in files]
    assert summary["files"] == len(files) >= 300
    small = [p for p, s in zip(files, sizes, strict=True) if s < 100 * 1024]
    assert len(small) / len(files) > 0.9, "most files are small"
    assert any(100 * 1024 <= s <= 5 * 1024 * 1024 for s in sizes), "some medium files"
    largest = max(files, key=lambda p: p.stat().st_size)
    assert largest.stat().st_size >= 0.1 * sum(sizes), "one dominant large blob"
    cctx = zstandard.ZstdCompressor(level=3)
    blob = largest.read_bytes()
    assert len(cctx.compress(blob)) > 0.99 * len(blob), "large blobs are incompressible"
    text = b"".join(p.read_bytes() for p in small if p.suffix in (".py", ".js", ".go", ".c"))
    per_file = sum(len(p.read_bytes()) for p in small) / sum(len(cctx.compress(p.read_bytes())) for p in small)
    assert 1.8 < per_file < 6, f"small files compress like source code, not like noise or padding: {per_file:.2f}"
    lines = text.splitlines()
    distinct = len(set(lines)) / len(lines)
    assert distinct > 0.1, f"lines are varied, not one template repeated: {distinct:.0%} distinct"
    digests = [hashlib.sha256(p.read_bytes()).digest() for p in files if p.stat().st_size > 0]
    assert len(digests) - len(set(digests)) >= 2, "some duplicate files"
    assert any(p.is_symlink() for p in (root / "links").iterdir())
    assert any(not any(Path(d).iterdir()) for d, _, _ in os.walk(root)), "empty directories"
    assert max(len(p.relative_to(root).parts) for p in files) >= 5, "nested directories"


def test_dataset_is_determined_by_its_seed(tree, tmp_path):
    root, _ = tree
    same = tmp_path / "same"
    dataset.generate(same, seed=7, scale=SCALE)
    other = tmp_path / "other"
    dataset.generate(other, seed=8, scale=SCALE)
    assert fingerprint(same) == fingerprint(root)
    assert fingerprint(other) != fingerprint(root)


def test_mutation_touches_about_two_percent(tree, tmp_path):
    root, _ = tree
    work = tmp_path / "mutated"
    subprocess.run(["cp", "-a", str(root), str(work)], check=True)
    before = fingerprint(work)
    # At this scale no file reaches the 8 MiB "large" mark, so mutate edits the two largest.
    largest = sorted(dataset.list_files(work), key=lambda p: -p.stat().st_size)[:2]
    large = {str(p.relative_to(work)): p.stat().st_size for p in largest}
    cli = subprocess.run([sys.executable, "-m", "bench.dataset", "mutate", str(work), "--seed", "3"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(cli.stdout)
    after = fingerprint(work)
    files_before = [k for k, v in before.items() if v not in ("dir",) and not v.startswith("link:")]
    changed = [k for k in files_before if after.get(k) != before[k]]
    added = [k for k in after if k not in before and after[k] != "dir"]
    share = (len(changed) + len(added)) / len(files_before)
    assert 0.01 <= share <= 0.05, f"mutation touched {share:.1%}"
    assert summary["deleted"] >= 1 and summary["created"] >= 1 and summary["large_edited"] >= 1
    assert all(after[k] != before[k] for k in large), "the large files changed"
    assert all((work / k).stat().st_size == large[k] for k in large), "large files edited in place, same size"


@pytest.mark.timeout(120)
def test_one_run_reports_ratios_for_every_metric(tmp_path):
    missing = [t for t in ("restic", "borg") if not shutil.which(t)]
    assert not missing, f"the benchmark compares against {missing}: apt-get install -y restic borgbackup"
    out, raw = tmp_path / "report.md", tmp_path / "raw.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "0.01", "--repeat", "1", "--workdir", str(tmp_path / "w"),
         "--out", str(out), "--json-out", str(raw)],
        cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    header = text.splitlines()[0]
    assert all(name in header for name in ("backupflow", "restic", "borg")), "all three tools measured"
    for label, unit, _target, _ in METRICS.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} ({unit})"))
        assert re.search(r"\| \d+\.\d+ \(vs (restic|borg)\) \| \d+\.\d+ \|", row), row
        assert re.search(r"\| (yes|\*\*no\*\*) \|$", row), row
    assert re.search(r"backupflow: 1/1 identical.*restic: 1/1 identical.*borg: 1/1 identical", text), text
    results = json.loads(raw.read_text())["results"]
    assert results["backupflow"][0]["mutation_growth"] > 0, "the mutated data was stored"


def test_e2e_overhead_is_the_median_of_paired_differences():
    from bench.e2e import report, summarise

    times = {"engine_first": [5.0, 4.0, 6.0], "cli_first": [6.2, 7.1, 6.9],
             "engine_again": [0.5, 0.6, 0.5], "cli_again": [1.7, 1.8, 1.6]}
    result = summarise(times)
    # pairs (1.2, 3.1, 0.9): median 1.2, where the difference of the sides' medians would be 1.9
    assert result["differences_first"] == pytest.approx([1.2, 3.1, 0.9])
    assert result["overhead_first"] == pytest.approx(1.2)
    assert result["overhead_again"] == pytest.approx(1.2)
    text = report(result)
    assert "| First backup | 5.00 | 6.90 | 1.20 | 1.20, 3.10, 0.90 | <= 1.5 | yes |" in text
    slow = summarise({**times, "cli_again": [2.5, 2.6, 2.0]})
    assert "| Unchanged re-backup | 0.50 | 2.50 | 2.00 | 2.00, 2.00, 1.50 |" in report(slow)
    assert "**no**" in report(slow)


@pytest.mark.timeout(180)
def test_e2e_runs_the_installed_cli_against_its_own_prefect_server(tree, tmp_path):
    root, _ = tree
    proc = subprocess.run([sys.executable, "-m", "bench.e2e", str(root), "2"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "BENCH_WORKDIR": str(tmp_path / "w")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 interleaved pairs)" in proc.stdout
    for label in ("First backup", "Unchanged re-backup"):
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {label} |"))
        assert re.search(r"\| -?\d+\.\d\d, -?\d+\.\d\d \| <= 1\.5 \| (yes|\*\*no\*\*) \|$", row), row
    assert not list((tmp_path / "w").glob("e2e-repo-*")), "repositories removed at the end"
