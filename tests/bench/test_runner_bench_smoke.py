"""The end-to-end CLI mode of the benchmark at a tiny scale: the runner is up before the steps,
each step counts the runner's CPU time and memory growth besides the client's, and the restore
is byte-for-byte. Timings are never asserted."""

from __future__ import annotations

import json
import os

import psutil

from bench import measure
from bench.runner_cli import BackupflowCLI


def test_cli_steps_count_the_runners_work(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.bin").write_bytes(os.urandom(300_000))
    tool = BackupflowCLI(tmp_path / "scratch", api_url=prefect_server.api_url)
    assert tool.available() is None
    tool.start()
    assert tool.probe is not None
    runner = psutil.Process(tool.probe.pid)
    try:
        repo, target = tmp_path / "repo", tmp_path / "restored"
        cmd, cwd = tool.init(repo)
        measure.run(cmd, env=tool.env(), cwd=cwd)
        cmd, cwd = tool.backup(repo, src)
        m = measure.run(cmd, env=tool.env(), cwd=cwd, probe=tool.probe)
        assert json.loads(m.stdout)["files"] == 5
        assert m.runner_cpu_s is not None and m.runner_cpu_s > 0, "the backup ran in the runner: its CPU counts"
        assert m.runner_growth is not None and m.peak_rss >= m.runner_growth >= 0
        target.mkdir()
        cmd, cwd = tool.restore(repo, target)
        measure.run(cmd, env=tool.env(), cwd=cwd, probe=tool.probe)
        assert measure.compare_trees(src, tool.restored_root(target, src)).identical
        assert runner.pid == tool.probe.pid, "every step went to the runner started before them"
    finally:
        tool.stop()
    assert not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE
