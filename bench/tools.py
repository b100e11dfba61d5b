"""The tools under comparison, each as the commands for init, backup, restore and verify.

Fairness choices, stated once here and repeated in docs/BENCHMARKS.md:
- Compression: zstd level 3 everywhere (backupflow `compression_level=3`, borg
  `--compression zstd,3`, restic `--compression auto`, which is its zstd default level).
- Encryption: borg `-e none`, backupflow unencrypted; restic cannot turn encryption off
  (AES-256-CTR + Poly1305, hardware-accelerated, a small share of its CPU).
- Caches: restic keeps its default metadata cache, in a per-run temporary RESTIC_CACHE_DIR;
  borg keeps its chunk and files caches in a per-run temporary BORG_BASE_DIR. Both are cold
  at the first backup of a fresh repository, like backupflow's.
- Parallelism: each tool's defaults (restic uses all cores; borg 1.2 is single-threaded).
- Every tool is a separate process started by the benchmark; wall time includes its start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Tool:
    name = ""

    def __init__(self, scratch: Path):
        self.scratch = scratch  # per-run private directory for caches and config
        self.scratch.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def available(self) -> str | None:
        """None when usable, otherwise why not."""
        return None

    def version(self) -> str:
        raise NotImplementedError

    def init(self, repo: Path) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def backup(self, repo: Path, source: Path) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def restore(self, repo: Path, target: Path) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def verify(self, repo: Path) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def restored_root(self, target: Path, source: Path) -> Path:
        """Where the source tree lands inside the restore target."""
        nested = target / source.resolve().relative_to("/")
        return nested if nested.is_dir() else target


class Restic(Tool):
    name = "restic"

    def env(self) -> dict[str, str]:
        return {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(self.scratch / "cache")}

    def available(self) -> str | None:
        return None if shutil.which("restic") else "restic is not installed (apt-get install -y restic)"

    def version(self) -> str:
        return subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()

    def init(self, repo):
        return ["restic", "-r", str(repo), "init", "--repository-version", "2"], None

    def backup(self, repo, source):
        return ["restic", "-r", str(repo), "--compression", "auto", "backup", "-q", "--host", "bench",
                str(source.resolve())], None

    def restore(self, repo, target):
        return ["restic", "-r", str(repo), "restore", "latest", "--host", "bench", "--target", str(target)], None

    def verify(self, repo):
        return ["restic", "-r", str(repo), "check", "--read-data"], None


class Borg(Tool):
    name = "borg"

    def __init__(self, scratch: Path):
        super().__init__(scratch)
        self.archives = 0

    def env(self) -> dict[str, str]:
        return {**os.environ, "BORG_BASE_DIR": str(self.scratch / "base"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def available(self) -> str | None:
        return None if shutil.which("borg") else "borg is not installed (apt-get install -y borgbackup)"

    def version(self) -> str:
        return subprocess.run(["borg", "--version"], capture_output=True, text=True).stdout.strip()

    def init(self, repo):
        self.archives = 0
        return ["borg", "init", "-e", "none", str(repo)], None

    def backup(self, repo, source):
        # Run inside the source with "." so archives hold relative paths; the files cache is
        # keyed by absolute path, so unchanged files are still skipped on the next run.
        self.archives += 1
        return ["borg", "create", "--compression", "zstd,3", f"{repo}::a{self.archives}", "."], source

    def restore(self, repo, target):
        target.mkdir(parents=True, exist_ok=True)
        return ["borg", "extract", f"{repo}::a{self.archives}"], target

    def verify(self, repo):
        return ["borg", "check", "--verify-data", str(repo)], None


class Backupflow(Tool):
    """The engine through its public storage API, in a subprocess (bench/engine_driver.py).

    The engine under test is a copy of the committed `storage/` (and `bench/`) at one git
    revision, exported at start, so commits landing in the shared working tree during a long
    run cannot change the engine half-way through. Without git, the working tree is used.
    """

    name = "backupflow"
    # Encrypted, as `backupflow init` makes a repository by default; restic always encrypts.
    # ``backupflow-plain`` is the same engine without encryption, to measure what it costs.
    password: str | None = "bench-password"

    def __init__(self, scratch: Path, rev: str | None = "HEAD"):
        super().__init__(scratch)
        self.code = ROOT
        self.rev = ""
        if rev is None:  # the working tree, as the installed CLI sees it
            return
        found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True)
        if found.returncode == 0:
            frozen = scratch / "engine"
            shutil.rmtree(frozen, ignore_errors=True)
            frozen.mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", found.stdout.strip(), "storage", "bench"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(frozen)], input=archive, check=True)
            self.code, self.rev = frozen, found.stdout.strip()

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(self.code), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("BACKUPFLOW_BENCH_PASSWORD", None)
        return {**env, "BACKUPFLOW_BENCH_PASSWORD": self.password} if self.password else env

    def _driver(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bench.engine_driver", *args]

    def available(self) -> str | None:
        probe = subprocess.run([sys.executable, "-c", "from storage.repository import Repository"],
                               env=self.env(), cwd=self.code, capture_output=True, text=True)
        if probe.returncode != 0:
            return "the engine is not importable yet (storage.repository.Repository): " + \
                (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None

    def version(self) -> str:
        where = f"committed storage/ at {self.rev}" if self.rev else "the working tree"
        mode = "encrypted" if self.password else "unencrypted"
        return f"backupflow engine, {mode}, {where} (Python {sys.version.split()[0]})"

    # Run from the code directory: `python -m` puts the working directory first on sys.path.
    def init(self, repo):
        return self._driver("init", str(repo), "--level", "3"), self.code

    def backup(self, repo, source):
        return self._driver("backup", str(repo), str(source.resolve())), self.code

    def restore(self, repo, target):
        return self._driver("restore", str(repo), str(target)), self.code

    def verify(self, repo):
        return self._driver("verify", str(repo)), self.code


class BackupflowPlain(Backupflow):
    """The engine with an unencrypted repository (``backupflow init --encryption none``)."""

    name = "backupflow-plain"
    password = None


TOOLS = {cls.name: cls for cls in (Backupflow, BackupflowPlain, Restic, Borg)}
