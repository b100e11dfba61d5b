"""Run locks: each backup announces itself under ``locks/`` while it runs.

A lock is never exclusive: many backups may write to one repository at once. Locks tell
others which unclaimed packs are still being used by a live run (so they are neither adopted
by another backup nor deleted by cleanup). A prune is the one exclusive run: it writes its lock
(kind ``prune``) and then looks for live backups; a backup writes its lock and then looks for
a live prune; whichever looks second sees the other and stands down. A lock is stale when its process is gone (same
host) or it is older than ``STALE_SECONDS`` (another host).
"""

from __future__ import annotations

import json
import os
import socket
import time

from storage.backend import Backend
from storage.errors import NotFound

STALE_SECONDS = 6 * 3600


def lock_name(run: str) -> str:
    return f"locks/{run}"


def acquire(backend: Backend, run: str, kind: str) -> None:
    doc = {"run": run, "kind": kind, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    backend.save(lock_name(run), json.dumps(doc).encode(), exclusive=False)


def release(backend: Backend, run: str) -> None:
    try:
        backend.remove(lock_name(run))
    except NotFound:
        pass


def _alive(doc: dict) -> bool:
    if doc.get("host") == socket.gethostname():
        try:
            os.kill(int(doc["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - float(doc.get("time", 0)) < STALE_SECONDS


def live_locks(backend: Backend) -> list[dict]:
    """The lock documents of live runs (``{run, kind, host, pid, time}``)."""
    docs = []
    for info in backend.list("locks/"):
        try:
            doc = json.loads(backend.load(info.name))
        except (NotFound, ValueError):
            continue
        if _alive(doc):
            docs.append(doc)
    return docs


def live_runs(backend: Backend) -> set[str]:
    return {doc["run"] for doc in live_locks(backend)}
