"""One engine step against any repository URL with fsspec options, as its own process, so the
cloud benchmark gets a wall time and a peak memory per step (bench/engine_driver.py does the
same for local paths but takes no options).

    python -m bench.cloud_step init|backup|restore|verify URL OPTIONS_JSON [PATH]

Prints one JSON object on stdout. Imports only the public storage API: no test servers, no
cloud SDK beyond what the engine itself loads, so the memory figure is the engine's.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # before gcsfs is imported

from storage import Repository  # noqa: E402  (after the gcsfs switch above)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] not in ("init", "backup", "restore", "verify"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    command, url, options = argv[0], argv[1], json.loads(argv[2])
    path = argv[3] if len(argv) == 4 else None
    password = os.environ.get("BACKUPFLOW_BENCH_PASSWORD") or None  # encrypted, as bench/tools.py sets it
    if command == "init":
        repo = Repository.init(url, options, compression_level=3, password=password)
        out: dict = {"repo": url, "encrypted": repo.encrypted}
    else:
        repo = Repository.open(url, options, password=password)
    ok = True
    try:
        if command == "backup":
            result = repo.backup(path)
            out = {"snapshot_id": result.snapshot_id, "stats": dict(result.stats)}
        elif command == "restore":
            out = {"restored": repo.restore("latest", path).to_dict()}
        elif command == "verify":
            report = repo.verify(read_data=True)
            ok = bool(report.ok)
            out = {"ok": ok}
    finally:
        repo.close()
    json.dump(out, sys.stdout, default=str)
    print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
