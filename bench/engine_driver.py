"""The backupflow engine as a command, so the benchmark runs it in its own process like the
peers (wall time includes interpreter start and imports, as borg's does).

    python -m bench.engine_driver init REPO [--level 3]
    python -m bench.engine_driver backup REPO SOURCE
    python -m bench.engine_driver restore REPO TARGET [--snapshot latest]
    python -m bench.engine_driver verify REPO

Each prints one JSON object on stdout. Uses only the public storage API (no Prefect). With
BACKUPFLOW_BENCH_PASSWORD set, ``init`` makes an encrypted repository and every command opens
it with that password (bench/tools.py sets it for the ``backupflow`` tool, not for
``backupflow-plain``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from storage.repository import Repository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_driver")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("repo")
    p.add_argument("--level", type=int, default=3)
    p = sub.add_parser("backup")
    p.add_argument("repo")
    p.add_argument("source")
    p = sub.add_parser("restore")
    p.add_argument("repo")
    p.add_argument("target")
    p.add_argument("--snapshot", default="latest")
    p = sub.add_parser("verify")
    p.add_argument("repo")
    args = parser.parse_args(argv)

    password = os.environ.get("BACKUPFLOW_BENCH_PASSWORD") or None
    if args.command == "init":
        repo = Repository.init(args.repo, compression_level=args.level, password=password)
        out = {"repo": args.repo, "encrypted": repo.encrypted}
    else:
        repo = Repository.open(args.repo, password=password)
    try:
        if args.command == "backup":
            result = repo.backup(args.source)
            out = {"snapshot_id": result.snapshot_id, "type": str(result.type), "stats": dict(result.stats)}
        elif args.command == "restore":
            repo.restore(args.snapshot, args.target)
            out = {"restored": args.snapshot}
        elif args.command == "verify":
            report = repo.verify(read_data=True)
            out = {"ok": bool(report.ok)}
    finally:
        repo.close()
    json.dump(out, sys.stdout, default=str)
    print()
    return 0 if out.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
