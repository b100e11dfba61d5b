"""Throughput of a fleet: N small sources backed up by 1, 2, 4 workers of one process work pool,
with the Prefect server on SQLite and on PostgreSQL; and what the leases cost a backup.

    python -m bench.fleet [--sources 24] [--mib 40] [--workers 1,2,4] [--limit 2]
                          [--db sqlite,postgres] [--lease-repeats 5] [--out FILE.json]

Per (database, worker count): a fresh server (services on, as `prefect server start`), the
deployments of tests/fleet/fleet.py, that many `prefect worker start` processes (each taking
``--limit`` runs at once, as a host backs up a few sources at a time), a fresh local
repository, then N backup runs of N different generated sources created at once. Measured from
creating the runs to the last one ending: wall time, runs per minute, runs that did not end
Completed, "database is locked" lines in the server's log, the server process's CPU seconds and
peak PSS (and PostgreSQL's, summed over its processes), the API requests per run (uvicorn's
access log), and for PostgreSQL the database
transactions and rows inserted per run (what a run costs the server's database).

Leases: the engine's unchanged re-backup of one source, with the time spent in the lease
functions the backup calls (acquire, the look for a prune, the sweep of stale leases, the live
writers and runs, the check before commit, release) and the object-store requests they make,
on local disk and on the S3 protocol server.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
from prefect.client.schemas.objects import StateType

from bench.run import machine
from storage import Repository
from storage.backend import open_backend
from storage.repository import leftovers, locks
from tests.cloud_servers import S3Server, moto
from tests.fleet.fleet import Fleet
from tests.postgres_server import PostgresCluster
from tests.prefect_server import QUIET_ENV, PrefectServer


def make_sources(root: Path, count: int, mib: float, seed: int = 7) -> list[Path]:
    """``count`` workspaces of about ``mib`` MiB each: 64 KiB files, half of each compressible text."""
    rng = random.Random(seed)
    files = max(1, int(mib * 16))
    out = []
    for i in range(count):
        ws = root / f"ws{i:03d}"
        for j in range(files):
            path = ws / f"d{j % 8}" / f"f{j:04d}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = (f"workspace {i} file {j} " * 1200).encode()[:32768]
            path.write_bytes(text + rng.randbytes(32768))
        out.append(ws)
    return out


class TreeSampler:
    """CPU seconds and peak summed PSS (resident memory, shared pages divided among their
    sharers) of processes and their children while it runs."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids = pids
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self) -> list[psutil.Process]:
        procs = []
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
        return procs

    def _sample(self) -> None:
        rss = 0
        for p in self._procs():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                self.cpu[p.pid] = t.user + t.system
                rss += p.memory_full_info().pss  # PostgreSQL's processes share their buffers
        self.peak = max(self.peak, rss)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __enter__(self) -> "TreeSampler":
        self._sample()
        self.start_cpu = sum(self.cpu.values())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values()) - self.start_cpu


def _pg_pids(cluster: PostgresCluster) -> list[int]:
    pid_file = cluster.data / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError):
        return [int(pid_file.read_text().split()[0])]
    return []


def _pg_counters(cluster: PostgresCluster) -> tuple[int, int]:
    xacts = int(cluster.query("SELECT xact_commit FROM pg_stat_database WHERE datname = 'prefect'"))
    rows = int(cluster.query("SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables"))
    return xacts, rows


@contextlib.contextmanager
def prefect_server(db: str, home: Path) -> Iterator[tuple[PrefectServer, PostgresCluster | None]]:
    cluster = None
    extra: dict[str, str] = {}
    if db == "postgres":
        cluster = PostgresCluster().start()
        extra["PREFECT_API_DATABASE_CONNECTION_URL"] = cluster.url
    # INFO: uvicorn's access log, one line per API request, counted per run
    extra["PREFECT_SERVER_LOGGING_LEVEL"] = "INFO"
    server = PrefectServer(home, extra_env=extra, services=True)
    try:
        server.start()
        yield server, cluster
    finally:
        server.stop()
        if cluster:
            cluster.stop()


REQUEST = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/api/[^ ?"]*)[^"]*" (\d{3})')
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def api_requests(log: str, runs: int) -> dict[str, Any]:
    """API requests per run from the access log, and the most frequent endpoints. The bench's
    own calls (creating the runs, which a schedule does inside the server, and polling their
    states) are counted apart."""
    calls: collections.Counter[str] = collections.Counter()
    errors = 0
    for method, path, status in REQUEST.findall(log):
        path = re.sub(r"/work_pools/[^/]+/", "/work_pools/{pool}/", UUID_RE.sub("{id}", path))
        calls[f"{method} {path}"] += 1
        errors += status.startswith("5")
    harness = {k: calls.pop(k, 0) for k in ("POST /api/flow_runs/filter", "POST /api/deployments/{id}/create_flow_run")}
    total = sum(calls.values())
    return {"api_requests_per_run": round(total / runs, 1), "api_5xx": errors, "bench_requests": harness,
            "top_endpoints_per_run": {k: round(v / runs, 1) for k, v in calls.most_common(8)}}


def fleet_round(db: str, workers: int, sources: list[Path], work: Path, limit: int) -> dict[str, Any]:
    with prefect_server(db, work / "server") as (server, cluster):
        env = {**os.environ, **QUIET_ENV, **server.env(), "BACKUPFLOW_AUDIT_PATH": str(work / "audit")}
        env.pop("BACKUPFLOW_REPO", None)
        fleet = Fleet(server.api_url, env, work).create()
        repo = str(work / "repo")
        Repository.init(repo)
        for i in range(workers):
            fleet.start_worker(f"w{i}", limit=limit)
        time.sleep(5)  # the workers are up and polling before the clock starts
        log_before = server.log.stat().st_size
        pg_before = _pg_counters(cluster) if cluster else None
        server_tree = TreeSampler(lambda: [server.proc.pid])
        db_tree = TreeSampler(lambda: _pg_pids(cluster) if cluster else [])
        with server_tree, db_tree:
            started = time.monotonic()
            made = fleet.submit_many([("backup", {"source": str(s), "repo": repo}, f"bench {s.name}")
                                      for s in sources], keep_errors=True)
            ids = [r for r in made if not isinstance(r, BaseException)]
            runs = fleet.wait(ids, timeout=3600)
            wall = time.monotonic() - started
        pg_after = _pg_counters(cluster) if cluster else None
        fleet.stop()
        log = server.log.read_bytes()[log_before:].decode(errors="replace")
        failed = [f"{r.name}: {r.state_name}" for r in runs.values() if r.state_type != StateType.COMPLETED]
        failed += [f"not created: {str(e)[:80]}" for e in made if isinstance(e, BaseException)]
        snapshots = len(Repository.open(repo).snapshots.ids())
        out: dict[str, Any] = {
            "db": db, "workers": workers, "runs_per_worker_at_once": limit, "runs": len(made), "wall_s": round(wall, 1),
            "runs_per_min": round((len(ids) - sum(r.state_type != StateType.COMPLETED for r in runs.values()))
                                  / wall * 60, 1), "failed_runs": len(failed), "failed": failed[:5],
            "database_is_locked": log.count("database is locked"), "snapshots": snapshots,
            "server_cpu_s": round(server_tree.cpu_s, 1), "server_peak_pss_mib": round(server_tree.peak / 2**20),
        }
        out.update(api_requests(log, max(len(ids), 1)))
        if cluster and pg_before and pg_after:
            out.update(postgres_cpu_s=round(db_tree.cpu_s, 1), postgres_peak_pss_mib=round(db_tree.peak / 2**20),
                       db_transactions_per_run=round((pg_after[0] - pg_before[0]) / max(len(ids), 1)),
                       db_rows_inserted_per_run=round((pg_after[1] - pg_before[1]) / max(len(ids), 1)))
        return out


# --- leases -------------------------------------------------------------------------------
class CountingBackend:
    """The repository's backend, counting requests: save, load, stat, list, remove, and each pack
    streamed through a sink (one request per pack; an S3 multipart upload makes several)."""

    def __init__(self, inner: Any, clock: "LeaseClock"):
        self._inner = inner
        for name in ("save", "load", "stat", "list", "remove"):
            setattr(self, name, clock.counted(getattr(inner, name)))
        self._clock = clock

    @property
    def open_sink(self) -> Any:
        factory = self._inner.open_sink
        if factory is None:
            return None

        def make() -> Any:
            sink = factory()
            sink.commit = self._clock.counted(sink.commit)
            return sink
        return make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


LEASE_CALLS = [(locks, "acquire"), (locks, "wait_for_no_exclusive"), (leftovers, "sweep"), (locks, "live_writers"),
               (locks, "live_runs"), (locks.Lease, "check"), (locks, "release")]


class LeaseClock:
    """Time spent inside the lease functions a backup calls, and the storage requests made meanwhile."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.requests = 0
        self.all_requests = 0
        self.depth = 0

    def timed(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds += time.perf_counter() - started
        return wrapper

    def counted(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.all_requests += 1
            if self.depth:
                self.requests += 1
            return fn(*args, **kwargs)
        return wrapper


def lease_cost(url: str, source: Path, repeats: int, options: dict[str, str] | None = None) -> dict[str, Any]:
    Repository.init(url, options)
    counter = LeaseClock()
    Repository.open(url, options, backend=CountingBackend(open_backend(url, options), counter)).backup(str(source))
    rows = []
    for _ in range(repeats):
        clock = LeaseClock()
        repo = Repository.open(url, options, backend=CountingBackend(open_backend(url, options), clock))
        saved = [(owner, name, getattr(owner, name)) for owner, name in LEASE_CALLS]
        for owner, name, fn in saved:
            setattr(owner, name, clock.timed(fn))
        try:
            started = time.perf_counter()
            repo.backup(str(source))
            wall = time.perf_counter() - started
        finally:
            for owner, name, fn in saved:
                setattr(owner, name, fn)
        rows.append((wall, clock.seconds, clock.requests, clock.all_requests))
    return {"rebackup_s": round(statistics.median(r[0] for r in rows), 3),
            "lease_ms": round(statistics.median(r[1] for r in rows) * 1000, 1),
            "lease_requests": statistics.median(r[2] for r in rows),
            "requests_per_rebackup": statistics.median(r[3] for r in rows),
            "requests_first_backup": counter.all_requests}


def leases(work: Path, source: Path, repeats: int) -> dict[str, Any]:
    out = {"local": lease_cost(str(work / "lease-repo"), source, repeats)}
    server = moto().start(work / "moto")
    try:
        s3 = S3Server(server)
        os.environ.update(s3.env)
        dest = s3.new_destination()
        out["s3"] = lease_cost(dest.url, source, repeats, dict(dest.options))
    finally:
        server.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=24)
    parser.add_argument("--mib", type=float, default=40.0, help="size of each source in MiB")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--limit", type=int, default=2, help="runs each worker takes at once (its host's capacity)")
    parser.add_argument("--lease-repeats", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    result: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg(), "sources": args.sources,
                              "mib": args.mib, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="bf-fleet-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        sources = make_sources(work / "sources", args.sources, args.mib)
        result["leases"] = leases(work, sources[0], args.lease_repeats)
        print(json.dumps(result["leases"]), file=sys.stderr)
        for db in args.db.split(","):
            for n in (int(w) for w in args.workers.split(",")):
                row = fleet_round(db, n, sources, work / f"{db}-{n}", args.limit)
                print(json.dumps(row), file=sys.stderr)
                result["rounds"].append(row)
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
