"""The cloud benchmark at a tiny scale, end to end against the real emulators (moto_server,
Azurite, fake-gcs-server): its report has one row per destination, every restore matched the
source byte for byte, verify passed, and the objects were counted on each server. Timings are
never asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cloud import COLUMNS, DESTINATIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_one_run_reports_a_row_per_destination(tmp_path):
    out, raw = tmp_path / "report.md", tmp_path / "raw.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cloud", "--scale", "0.005", "--workdir", str(tmp_path / "w"),
         "--engine-rev", "worktree", "--out", str(out), "--json-out", str(raw)],
        cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads(raw.read_text())
    assert not saved["info"]["unavailable"], f"every emulator must start: {saved['info']['unavailable']}"

    table = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert table[0].count("|") == len(COLUMNS) + 2, table[0]
    rows = {line.split("|")[1].strip(): line for line in table[1:]}
    assert list(rows) == [label for label, _, _ in DESTINATIONS.values()], "one row per destination, in order"
    for label, line in rows.items():
        cells = [c.strip() for c in line.split("|")[2:-1]]
        assert len(cells) == len(COLUMNS), line
        assert all(re.fullmatch(r"\d+\.\d\d", cells[i]) for i in (0, 3, 5, 7)), f"{label}: timings in seconds {cells}"
        assert cells[-1] == "1/1, 1/1", f"{label}: restore identical and verify ok: {cells[-1]}"

    for key, (r,) in saved["results"].items():
        assert r["packs_added"] >= 1 and r["objects_first"] > r["packs_added"], \
            f"{key}: the first backup stored packs plus index/snapshot objects, as listed on the server"
        assert r["rebackup_files_read"] == 0, f"{key}: an unchanged re-backup reads no file again"
        assert r["repo_mib"] > 0 and r["backup_rss"] > 10, key
