"""Measuring one command: wall time and peak memory of its whole process tree; and the checks
around a measurement that must stay outside the timing (warm-up read, repository size, tree
comparison after a restore).

Peak memory is the larger of two figures, both sampled every 10 ms: the largest VmHWM (the
kernel's own high-water mark of a process's RSS, exact between samples) of any process in the
tree, and the peak of the summed RSS of the whole tree (catches worker processes). The
kernel's ru_maxrss from wait4 is not used: it survives exec, so a child forked from a large
benchmark process reports the parent's size.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_SELF_CMDLINE = psutil.Process().cmdline()


@dataclass
class Measurement:
    wall_s: float
    peak_rss: int  # bytes
    returncode: int
    stdout: str = ""
    stderr: str = ""
    runner_cpu_s: float | None = None  # with a probe: the resident runner's share (bench/runner_cli.py)
    runner_growth: int | None = None  # bytes, already added to peak_rss


class CommandFailed(RuntimeError):
    pass


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _sample_tree(pid: int, stop: threading.Event, peak: list[int], probe=None) -> None:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        if probe is not None:
            probe.sample()
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                if p.cmdline() == _SELF_CMDLINE:
                    continue  # between fork and exec the child still maps the benchmark's memory
                total += p.memory_info().rss
                peak[0] = max(peak[0], _hwm(p.pid))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        peak[0] = max(peak[0], total)
        stop.wait(0.01)


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
        check: bool = True, probe=None) -> Measurement:
    """Run `cmd` to completion; time it and record its peak memory. With a ``probe`` (a
    bench.runner_cli.RunnerProbe), the resident runner's CPU time and memory growth for the
    command are recorded too, and the growth is added to the peak."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if probe is not None:
            probe.begin()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, stop, peak, probe), daemon=True)
        sampler.start()
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        m = Measurement(wall, peak[0], proc.returncode,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))
        if probe is not None:
            m.runner_cpu_s, m.runner_growth = probe.end()
            m.peak_rss += m.runner_growth
    if check and m.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, cmd))} exited {m.returncode}:\n{m.stderr[-3000:]}{m.stdout[-1000:]}")
    return m


def warm_up(root: str | os.PathLike) -> int:
    """Read every file once so that each tool starts from the same warm page cache."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            with open(p, "rb", buffering=0) as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def tree_size(root: str | os.PathLike) -> int:
    """Apparent size in bytes of every file under root (what a repository costs to store)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


@dataclass
class TreeDiff:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)  # content, type or link target
    mode_or_mtime: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def summary(self) -> str:
        if self.identical and not self.mode_or_mtime:
            return "identical"
        parts = [f"{len(v)} {k}" for k, v in vars(self).items() if v]
        sample = (self.missing + self.extra + self.different + self.mode_or_mtime)[:3]
        return ", ".join(parts) + f" (e.g. {sample})"


def _entries(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def compare_trees(source: str | os.PathLike, restored: str | os.PathLike) -> TreeDiff:
    """Byte-for-byte comparison of two trees: names, types, contents, link targets, modes, mtimes."""
    source, restored = Path(source), Path(restored)
    a, b = _entries(source), _entries(restored)
    diff = TreeDiff(missing=sorted(set(a) - set(b)), extra=sorted(set(b) - set(a)))
    for rel in sorted(set(a) & set(b)):
        sa, sb = a[rel], b[rel]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diff.different.append(rel)
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(source / rel) != os.readlink(restored / rel):
                diff.different.append(rel)
        elif stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size or not _same_content(str(source / rel), str(restored / rel)):
                diff.different.append(rel)
            elif stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) or sa.st_mtime_ns != sb.st_mtime_ns:
                diff.mode_or_mtime.append(rel)
    return diff
