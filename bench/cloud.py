"""The engine against local disk and the three cloud emulators, on the same seeded workspace.

    python -m bench.cloud [--scale 1.0] [--repeat 1] [--workdir DIR] [--out FILE.md]

For each destination (local disk, S3 on moto_server, Azure Blob on Azurite, GCS on
fake-gcs-server), on a fresh repository per repeat: first backup, unchanged re-backup, full
restore of the latest snapshot into an empty directory (compared byte-for-byte with the source
afterwards, outside the timing), verify with data read. Every step is its own process
(bench/cloud_step.py), so each has its own wall time and peak memory. Outside the timing the
destination is listed with the server's own API (not through the engine) for the number of
objects and their total size, and the emulator's CPU time per step is read from /proc.

The emulators run on this machine, in memory, over loopback: the figures show what the
protocol and the engine's orchestration of it cost, not a cloud's latency or bandwidth.
Servers start one at a time and stop after their destination, so at most one holds the
repository in its memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from azure.storage.blob import BlobServiceClient

from bench import dataset, measure
from bench.run import machine
from bench.tools import Backupflow
from tests.cloud_servers import AzureServer, GcsServer, ProtocolServer, S3Server, azurite, fake_gcs, moto

MiB = 1 << 20
# destination key -> (label, server class, server factory); local disk has no server
DESTINATIONS = {
    "local": ("local disk", None, None),
    "s3": ("S3 (moto_server)", S3Server, moto),
    "azure": ("Azure Blob (Azurite)", AzureServer, azurite),
    "gcs": ("GCS (fake-gcs-server)", GcsServer, fake_gcs),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Target:
    """One destination: where a repository goes, how to reach it, how to count what it holds."""

    key: str
    work: Path
    server: ProtocolServer | None = None
    cloud: S3Server | AzureServer | GcsServer | None = None
    url: str = ""
    bucket: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return DESTINATIONS[self.key][0]

    def env(self) -> dict[str, str]:
        return dict(self.cloud.env) if self.cloud else {}

    def fresh_repository(self) -> None:
        if self.cloud is None:
            repo = self.work / "repo-local"
            shutil.rmtree(repo, ignore_errors=True)
            self.url, self.options = str(repo), {}
        else:
            dest = self.cloud.new_destination()
            self.url, self.options, self.bucket = dest.url, dest.options, dest.bucket

    def objects(self) -> tuple[int, int]:
        """(number of objects, total bytes) in the repository, listed with the server's own API."""
        if self.cloud is None:
            files = [p for p in Path(self.url).rglob("*") if p.is_file()]
            return len(files), sum(p.stat().st_size for p in files)
        sizes = list(_list_sizes(self.cloud, self.bucket, "repo/"))
        return len(sizes), sum(sizes)

    def cpu_seconds(self) -> float:
        """CPU time the emulator (and its children) used so far."""
        if self.server is None or self.server.proc is None:
            return 0.0
        try:
            root = psutil.Process(self.server.proc.pid)
            total = 0.0
            for p in [root, *root.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def _list_sizes(cloud, bucket: str, prefix: str):
    if isinstance(cloud, S3Server):
        pages = cloud.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Size"]
    elif isinstance(cloud, AzureServer):
        container = BlobServiceClient.from_connection_string(cloud.connection_string).get_container_client(bucket)
        for blob in container.list_blobs(name_starts_with=prefix):
            yield blob.size
    else:
        token = ""
        while True:
            page = {"pageToken": token} if token else {}
            query = urllib.parse.urlencode({"prefix": prefix, "maxResults": 1000, **page})
            with urllib.request.urlopen(f"{cloud.endpoint}/storage/v1/b/{bucket}/o?{query}", timeout=60) as r:
                page = json.loads(r.read())
            for item in page.get("items", []):
                yield int(item["size"])
            token = page.get("nextPageToken", "")
            if not token:
                return


def start_target(key: str, work: Path) -> Target:
    _, cls, factory = DESTINATIONS[key]
    target = Target(key, work)
    if factory is not None:
        target.server = factory().start(work / "servers" / key)
        target.cloud = cls(target.server)
    return target


def restored_root(target: Path, source: Path) -> Path:
    """Where the source tree lands inside the restore target (the engine keeps absolute paths)."""
    nested = target / source.resolve().relative_to("/")
    return nested if nested.is_dir() else target


class Runner:
    """Runs the engine steps for a target in their own processes and records each one."""

    def __init__(self, engine: Backupflow):
        self.engine = engine

    def step(self, target: Target, command: str, path: Path | None = None) -> tuple[measure.Measurement, dict, float]:
        cmd = [sys.executable, "-m", "bench.cloud_step", command, target.url, json.dumps(target.options)]
        if path is not None:
            cmd.append(str(path))
        os.sync()  # the previous step's write-back must not land in this one's timing
        cpu0 = target.cpu_seconds()
        m = measure.run(cmd, env={**self.engine.env(), **target.env()}, cwd=self.engine.code)
        server_cpu = target.cpu_seconds() - cpu0
        lines = m.stdout.strip().splitlines()
        return m, (json.loads(lines[-1]) if lines else {}), server_cpu

    def repeat(self, target: Target, src: Path, data_bytes: int) -> dict:
        target.fresh_repository()
        self.step(target, "init")
        measure.warm_up(src)
        row: dict = {"load": []}

        def record(key: str, m: measure.Measurement, cpu: float) -> None:
            row[key + "_s"], row[key + "_rss"], row[key + "_server_cpu"] = m.wall_s, m.peak_rss / MiB, cpu
            row["load"].append(os.getloadavg()[0])
            log(f"  {target.key:6} {key:10} {m.wall_s:8.2f} s  peak {m.peak_rss / MiB:7.1f} MiB  "
                f"server cpu {cpu:6.1f} s  load {row['load'][-1]:.1f}")

        objs0, _ = target.objects()
        m, out, cpu = self.step(target, "backup", src.resolve())
        record("backup", m, cpu)
        row["backup_mibs"] = data_bytes / MiB / m.wall_s
        row["packs_added"] = out["stats"]["packs_added"]
        objs1, _ = target.objects()
        row["objects_first"] = objs1 - objs0
        m, out, cpu = self.step(target, "backup", src.resolve())
        record("rebackup", m, cpu)
        objs2, size = target.objects()
        row["objects_rebackup"], row["objects_total"], row["repo_mib"] = objs2 - objs1, objs2, size / MiB
        row["rebackup_files_read"] = out["stats"]["files_read"]

        restore = target.work / f"restore-{target.key}"
        shutil.rmtree(restore, ignore_errors=True)
        restore.mkdir()
        m, _, cpu = self.step(target, "restore", restore)
        record("restore", m, cpu)
        row["restore_mibs"] = data_bytes / MiB / m.wall_s
        diff = measure.compare_trees(src, restored_root(restore, src))
        row["restore_check"], row["restore_identical"] = diff.summary(), diff.identical
        log(f"  {target.key:6} restored tree: {diff.summary()}")
        shutil.rmtree(restore, ignore_errors=True)

        m, out, cpu = self.step(target, "verify")
        record("verify", m, cpu)
        row["verify_ok"] = bool(out.get("ok"))
        return row


# report column -> (header, how to render a list of per-repeat rows)
def _med(key: str, fmt: str = "{:.2f}", spread: bool = False):
    """The median, and with `spread` the min-max over 3+ repeats when they differ by 5 % or more
    (this machine is shared, so a single figure would hide how much it moved)."""
    def render(rows: list[dict]) -> str:
        values = [r[key] for r in rows]
        text = fmt.format(statistics.median(values))
        lo, hi = min(values), max(values)
        if spread and len(values) >= 3 and hi - lo >= 0.05 * max(abs(hi), 1e-9):
            text += f" ({fmt.format(lo)}-{fmt.format(hi)})"
        return text
    return render


def _trio(suffix: str, fmt: str):
    return lambda rows: " / ".join(fmt.format(statistics.median(r[f"{k}_{suffix}"] for r in rows))
                                   for k in ("backup", "restore", "verify"))


COLUMNS = [
    ("First backup (s)", _med("backup_s", spread=True)),
    ("MiB/s", _med("backup_mibs", "{:.1f}", spread=True)),
    ("Objects uploaded (packs)", lambda rows: f"{_med('objects_first', '{:.0f}')(rows)} "
                                              f"({_med('packs_added', '{:.0f}')(rows)})"),
    ("Unchanged re-backup (s)", _med("rebackup_s", spread=True)),
    ("Objects added", _med("objects_rebackup", "{:.0f}")),
    ("Full restore (s)", _med("restore_s", spread=True)),
    ("Restore MiB/s", _med("restore_mibs", "{:.1f}", spread=True)),
    ("Verify --read-data (s)", _med("verify_s", spread=True)),
    ("Repository (MiB, objects)", lambda rows: f"{_med('repo_mib', '{:.0f}')(rows)}, "
                                               f"{_med('objects_total', '{:.0f}')(rows)}"),
    ("Peak RSS MiB: backup / restore / verify", _trio("rss", "{:.0f}")),
    ("Emulator CPU s: backup / restore / verify", _trio("server_cpu", "{:.1f}")),
    ("Restore identical, verify ok", lambda rows: f"{sum(r['restore_identical'] for r in rows)}/{len(rows)}, "
                                                  f"{sum(r['verify_ok'] for r in rows)}/{len(rows)}"),
]


def report(results: dict[str, list[dict]], info: dict) -> str:
    lines = ["| Destination | " + " | ".join(h for h, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for key, rows in results.items():
        lines.append(f"| {DESTINATIONS[key][0]} | " + " | ".join(render(rows) for _, render in COLUMNS) + " |")
    for key, why in info.get("unavailable", {}).items():
        lines.append(f"\n{DESTINATIONS[key][0]} was not measured: {why}")
    for key, rows in results.items():
        bad = [r["restore_check"] for r in rows if not r["restore_identical"]]
        if bad:
            lines.append(f"\n{DESTINATIONS[key][0]}: restored tree differs from the source: {bad[0]}")
    loads = sorted(x for rows in results.values() for r in rows for x in r["load"])
    ds = info["dataset"]
    lines += [
        "",
        f"Dataset: scale {info['scale']}, {ds['files']} files, {ds['bytes'] / MiB:.0f} MiB; medians of "
        f"{info['repeat']} repeat(s), a fresh repository (bucket) per repeat. Every step is a separate "
        "process (wall time includes interpreter start and imports); peak RSS is the engine process's. "
        "'Objects uploaded' counts the objects the first backup added (listed with the server's API); "
        "in parentheses the packs among them.",
        "",
        "The emulators run on this same machine, in memory, over loopback, and take CPU from the "
        "engine (see the emulator CPU column): these figures show protocol and orchestration "
        "cost, not cloud latency or bandwidth.",
    ]
    if loads:
        lines.append(f"\n1-minute load average right after the timed steps: median {statistics.median(loads):.1f}, "
                     f"max {loads[-1]:.1f} on {os.cpu_count()} cores (above {os.cpu_count()}: something else "
                     "was competing for the CPU).")
    m = info["machine"]
    lines.append(f"\nEngine: {info['engine']}. Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
                 f"{m['disk']}, Linux {m['kernel']}; load average at start {info['load_at_start'][0]:.1f}. "
                 f"Command: `{info['command']}`.")
    return "\n".join(lines) + "\n"


def prepare_dataset(work: Path, seed: int, scale: float) -> dict:
    """Generate the workspace, or reuse the one already in `work` made with the same seed and scale."""
    base, marker = work / "dataset", work / "dataset.json"
    if marker.exists() and base.is_dir():
        saved = json.loads(marker.read_text())
        if saved["seed"] == seed and saved["scale"] == scale:
            log(f"reusing the dataset in {base}")
            return saved["summary"]
    shutil.rmtree(base, ignore_errors=True)
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    summary = dataset.generate(base, seed, scale)
    log(f"dataset generated in {time.perf_counter() - t0:.1f} s: {summary}")
    marker.write_text(json.dumps({"seed": seed, "scale": scale, "summary": summary}))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cloud", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--destinations", default=",".join(DESTINATIONS), help="comma-separated subset of "
                   + ", ".join(DESTINATIONS))
    p.add_argument("--workdir", help="where the dataset, local repository and server logs go (default: a temp dir)")
    p.add_argument("--out", help="write the Markdown report here as well")
    p.add_argument("--json-out", help="write raw results (every repeat) as JSON here")
    p.add_argument("--engine-rev", default="HEAD",
                   help="git revision of storage/ and bench/ to run (a frozen copy; 'worktree' for the live tree)")
    p.add_argument("--report-from", metavar="JSON", help="only print the report of an earlier --json-out file")
    args = p.parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        text = report(saved["results"], saved["info"])
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="backupflow-cloud-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    engine = Backupflow(work / "engine", None if args.engine_rev == "worktree" else args.engine_rev)
    why = engine.available()
    if why or not (engine.code / "bench" / "cloud_step.py").exists():
        why = why or "bench/cloud_step.py is not in that revision; use --engine-rev worktree"
        print(f"cannot run the engine: {why}", file=sys.stderr)
        return 1
    info = {"scale": args.scale, "repeat": args.repeat, "machine": machine(), "engine": engine.version(),
            "dataset": prepare_dataset(work, args.seed, args.scale), "unavailable": {},
            "command": "python -m bench.cloud " + " ".join(argv if argv is not None else sys.argv[1:]),
            "load_at_start": os.getloadavg()}
    src = work / "dataset"
    runner, results = Runner(engine), {}
    for key in [k.strip() for k in args.destinations.split(",")]:
        try:
            target = start_target(key, work)
        except Exception as exc:  # a missing emulator is reported, the others still run
            info["unavailable"][key] = f"{exc} (run scripts/install_test_tools.sh)".splitlines()[0]
            log(f"skipping {key}: {info['unavailable'][key]}")
            continue
        try:
            for r in range(args.repeat):
                log(f"{target.label}, repeat {r + 1}/{args.repeat}")
                results.setdefault(key, []).append(runner.repeat(target, src, info["dataset"]["bytes"]))
        finally:
            target.stop()
    text = report(results, info)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    json_out = Path(args.json_out) if args.json_out else work / "cloud-results.json"
    json_out.write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    log(f"raw results: {json_out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["restore_identical"] and r["verify_ok"] for rows in results.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
