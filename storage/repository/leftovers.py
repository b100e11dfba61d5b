"""Leftovers of killed runs: stale leases and half-written temporary files.

A process killed with SIGKILL (or a host that lost power) leaves its lease under ``locks/``
and, on local disk, the temporary file of the pack it was filling (up to a pack's size). The
next backup and the next prune remove what is provably dead, and say so:

- a lease is dead when it is stale (locks.is_live: not refreshed in time, or its PID is gone
  on this host);
- a temporary file is dead when its writer is gone: the PID in its name is dead on this host
  (proof enough, as for leases), or, when it was written on another host or its name carries
  no writer, it has not been written for a safe age (``BACKUPFLOW_TEMP_SAFE_AGE``, default the
  lease stale time, 30 minutes): a live writer writes to or names its file well within that.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from storage.backend import HOST_TAG, Backend, TemporaryInfo
from storage.errors import InvalidConfig
from storage.repository import locks




@dataclass
class Leftovers:
    leases_removed: int = 0
    temporaries_deleted: int = 0
    temporary_bytes: int = 0
    runs: list[str] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __bool__(self) -> bool:
        return bool(self.leases_removed or self.temporaries_deleted)

    def sentence(self) -> str:
        parts = []
        if self.leases_removed:
            parts.append(f"{self.leases_removed} stale lease(s) of killed runs")
        if self.temporaries_deleted:
            parts.append(f"{self.temporaries_deleted} half-written temporary file(s) ({self.temporary_bytes} bytes)")
        return "removed " + " and ".join(parts)


def temp_safe_age() -> float:
    raw = os.environ.get("BACKUPFLOW_TEMP_SAFE_AGE", "").strip()
    if not raw:
        return locks.LeaseTimes.from_env().stale_after
    try:
        value = float(raw)
    except ValueError:
        raise InvalidConfig(f"BACKUPFLOW_TEMP_SAFE_AGE={raw!r} is not a number of seconds; "
                            "set it to one such as 1800.") from None
    return max(0.0, value)


def pid_dead(pid: int) -> bool:
    """True if no process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def dead_temporaries(backend: Backend) -> list[TemporaryInfo]:
    """The temporary files whose writer is provably gone (see the module docstring)."""
    safe_age = temp_safe_age()
    dead = []
    for info in backend.temporaries():  # [] on object stores: they write whole objects
        if info.host == HOST_TAG and info.pid is not None:
            gone = info.pid != os.getpid() and pid_dead(info.pid)
        else:
            gone = info.age >= safe_age
        if gone:
            dead.append(info)
    return dead


def find(backend: Backend, own_run: str | None = None) -> tuple[list[str], list[TemporaryInfo]]:
    """(runs with stale leases, dead temporaries), deleting nothing."""
    return locks.stale_runs(backend, keep=own_run), dead_temporaries(backend)


def sweep(backend: Backend, own_run: str | None = None, dry_run: bool = False) -> Leftovers:
    """Remove stale leases and dead temporary files; what was (or would be) removed."""
    out = Leftovers()
    if dry_run:
        runs, temps = find(backend, own_run)
    else:
        runs = locks.remove_stale(backend, keep=own_run)
        temps = dead_temporaries(backend)
        for info in temps:
            backend.remove_temporary(info.name)
    out.runs = sorted(runs)
    out.leases_removed = len(runs)
    out.temporaries = [t.name for t in temps]
    out.temporaries_deleted = len(temps)
    out.temporary_bytes = sum(t.size for t in temps)
    return out
