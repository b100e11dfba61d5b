"""Leases: who is working on a repository right now, refreshed while they work.

Vocabulary: a *lease* is an object under ``locks/`` that a run (a backup, a prune, a reader)
writes when it starts, rewrites every ``refresh`` seconds from a background thread, and
removes when it ends. Kinds:

- ``backup``: shared with other backups and readers; names the backup's chain.
- ``read``: verify, restore, export, ls; shared with backups and other readers.
- ``version``: adding versions (storage/versions/); shared like ``backup``.
- ``prune``: exclusive, excludes every other lease.

Invariants (docs/FORMAT.md, "leases"):

- Handshake: an exclusive run writes its lease, then refuses if any other live lease exists;
  a shared run writes its lease, then stands down (or waits) if a live exclusive one exists.
  Whichever looks second sees the other, so no backup or reader runs while prune deletes.
- Every lease object is created with an exclusive (conditional) write and never overwritten:
  a refresh creates ``locks/<run>.<n+1>`` and then removes ``locks/<run>.<n>``, so at every
  moment at least one object of a live run exists, on every store.
- A lease is stale when its holder has not refreshed it for ``stale_after`` seconds (its own
  document says how long), whatever host or PID wrote it; on the holder's own host a dead PID
  makes it stale at once. The age compares the holder's clock with the reader's: clocks may
  differ by up to ``stale_after - refresh`` (25 minutes by default) without harm.
- A holder whose lease went stale (its process was frozen longer than ``stale_after``) or was
  removed learns it at the next refresh or :meth:`Lease.check`, which then raises, so a backup
  never commits after a prune may have deleted what it relied on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from storage.backend import Backend
from storage.errors import BackupError, InvalidConfig, Locked, NotFound, PermanentError
from storage.layout import LOCKS

PREFIX = LOCKS
EXCLUSIVE_KINDS = frozenset({"prune"})
log = logging.getLogger("backupflow.leases")


@dataclass(frozen=True)
class LeaseTimes:
    """How often a holder refreshes, when an unrefreshed lease is stale, how long a shared run
    waits for an exclusive one to end. Environment: BACKUPFLOW_LEASE_REFRESH (default 300 s),
    BACKUPFLOW_LEASE_STALE (1800 s), BACKUPFLOW_LEASE_WAIT (10 s).

    The short default wait matters when a prune and a backup or reader start together: the
    prune sees their lease and refuses, and they see the prune's lease for the moment it
    lives; waiting a little lets them go ahead instead of both standing down."""

    refresh: float = 300.0
    stale_after: float = 1800.0
    wait: float = 10.0

    @classmethod
    def from_env(cls) -> "LeaseTimes":
        values = {}
        for field, var in (("refresh", "BACKUPFLOW_LEASE_REFRESH"), ("stale_after", "BACKUPFLOW_LEASE_STALE"),
                           ("wait", "BACKUPFLOW_LEASE_WAIT")):
            raw = os.environ.get(var, "").strip()
            if not raw:
                continue
            try:
                values[field] = float(raw)
            except ValueError:
                raise InvalidConfig(f"{var}={raw!r} is not a number of seconds; set it to one such as 300.") from None
            if values[field] < 0:
                raise InvalidConfig(f"{var} must not be negative; set it to a number of seconds.")
        times = cls(**values)
        if times.refresh <= 0 or times.stale_after <= 2 * times.refresh:
            raise InvalidConfig("BACKUPFLOW_LEASE_STALE must be more than twice BACKUPFLOW_LEASE_REFRESH "
                                f"(now {times.stale_after:g} and {times.refresh:g} s), so a live lease is never stale.")
        return times


def _object_name(run: str, seq: int) -> str:
    return f"{PREFIX}{run}.{seq}"


def _parse_name(name: str) -> tuple[str, int]:
    """(run, seq) of a lease object; ``locks/<run>`` of older versions is seq 0."""
    base = name[len(PREFIX):] if name.startswith(PREFIX) else name
    run, _, seq = base.partition(".")
    return run, int(seq) if seq.isdigit() else 0


def _pid_dead(doc: dict) -> bool:
    if doc.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(doc["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, KeyError, TypeError, OverflowError):
        return False
    return False


def is_live(doc: dict, now: float | None = None) -> bool:
    if _pid_dead(doc):
        return False
    try:
        age = (time.time() if now is None else now) - float(doc.get("time", 0))
        stale_after = float(doc.get("stale_after", LeaseTimes.stale_after))
    except (TypeError, ValueError):
        return False
    return age < stale_after


class Lease:
    """One run's lease; refreshed from a daemon thread until :meth:`release`."""

    def __init__(self, backend: Backend, run: str, kind: str, times: LeaseTimes | None = None, **extra: Any):
        self.backend = backend
        self.run = run
        self.kind = kind
        self.times = times or LeaseTimes.from_env()
        self.extra = extra
        self.seq = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._lock = threading.Lock()  # a refresh and a check never interleave
        self.written_at = 0.0          # the ``time`` of the newest lease object (this host's clock)

    def _doc(self, seq: int = 0) -> bytes:
        self.written_at = time.time()
        doc = {"run": self.run, "kind": self.kind, "host": socket.gethostname(), "pid": os.getpid(),
               "time": self.written_at, "seq": seq, "refresh": self.times.refresh,
               "stale_after": self.times.stale_after, **self.extra}
        return json.dumps(doc).encode()

    def acquire(self) -> "Lease":
        self.backend.save(_object_name(self.run, self.seq), self._doc(), exclusive=True)
        _HELD[self.run] = self
        self._thread = threading.Thread(target=self._keep, name=f"bf-lease-{self.run[:8]}", daemon=True)
        self._thread.start()
        return self

    def _keep(self) -> None:
        while not self._stop.wait(self.times.refresh):
            try:
                self.refresh()
            except BackupError as exc:  # a blip: the next refresh may succeed, well before stale
                log.warning("could not refresh the lease of run %s: %s", self.run[:8], exc.message)
            if self.lost:
                return

    def refresh(self) -> None:
        with self._lock:
            if not self._still_ours():
                return
            old = _object_name(self.run, self.seq)
            written = self.written_at
            try:
                self.backend.save(_object_name(self.run, self.seq + 1), self._doc(self.seq + 1), exclusive=True)
            except BaseException:
                self.written_at = written
                raise
            self.seq += 1
            try:
                self.backend.remove(old)
            except NotFound:
                pass

    def _still_ours(self) -> bool:
        """False (and ``lost``) when others may have judged the lease stale: it is older than
        ``stale_after`` (the process was frozen, or refreshes failed) or it was removed."""
        if not self.lost and time.time() - self.written_at >= self.times.stale_after:
            self.lost = True
        if not self.lost:
            try:
                self.backend.stat(_object_name(self.run, self.seq))
            except NotFound:
                self.lost = True
        if self.lost:
            log.error("the lease of run %s went stale or was removed by another process", self.run[:8])
        return not self.lost

    def check(self) -> None:
        """Raise :class:`Locked` when the lease was lost (see the module docstring); asks the
        store, so a commit right after a long freeze does not rely on the refresher thread."""
        with self._lock:
            self._still_ours()
        if self.lost:
            raise Locked(f"This run's lease under {PREFIX} went stale (the process was paused, or could not refresh "
                         f"it, for over {self.times.stale_after:g} s), so a prune may have run; nothing was committed; "
                         "run it again.")

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._stop.set()
        _HELD.pop(self.run, None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # stuck in a refresh: its next name is unknown
                remove_run(self.backend, self.run)
                return
        try:
            self.backend.remove(_object_name(self.run, self.seq))
        except NotFound:
            pass


# Leases held by this process, by run: a backup's plan, store and commit steps may run as
# separate tasks with separate Repository handles, yet refresh and release one lease.
_HELD: dict[str, Lease] = {}


def held(run: str) -> Lease | None:
    return _HELD.get(run)


def acquire(backend: Backend, run: str, kind: str, **extra: Any) -> Lease:
    return Lease(backend, run, kind, **extra).acquire()


def release(backend: Backend, run: str) -> None:
    lease = _HELD.get(run)
    if lease is not None:
        lease.release()
    else:
        remove_run(backend, run)


def remove_run(backend: Backend, run: str) -> None:
    for info in list(backend.list(PREFIX)):
        if _parse_name(info.name)[0] == run:
            try:
                backend.remove(info.name)
            except NotFound:
                pass


def _read_all(backend: Backend, attempts: int = 3, skip: str | None = None) -> dict[str, tuple[list[str], dict | None]]:
    """run -> (its lease object names, the newest readable document; None for ``skip``, the
    caller's own run, which is not read: one request less per look on a remote store).

    A lease object that vanishes between the listing and the read was refreshed (or its run
    ended): the listing is taken again, so a live run is never mistaken for a stale one."""
    runs: dict[str, tuple[list[str], dict | None, int]] = {}
    vanished = False
    for info in backend.list(PREFIX):
        run, seq = _parse_name(info.name)
        names, doc, best = runs.get(run, ([], None, -1))
        names.append(info.name)
        if seq > best and run != skip:
            try:
                doc, best = json.loads(backend.load(info.name)), seq
            except NotFound:
                vanished = True
            except ValueError:
                pass  # unreadable: stale unless a newer, readable one exists
        runs[run] = (names, doc, best)
    if vanished and attempts > 1:
        return _read_all(backend, attempts - 1, skip)
    return {run: (names, doc) for run, (names, doc, _) in runs.items()}


def live_locks(backend: Backend, skip: str | None = None) -> list[dict]:
    """The lease documents of live runs (``{run, kind, host, pid, time, ...}``), but ``skip``'s."""
    now = time.time()
    return [doc for _, doc in _read_all(backend, skip=skip).values() if doc is not None and is_live(doc, now)]


def live_runs(backend: Backend) -> set[str]:
    return {doc["run"] for doc in live_locks(backend)}


def live_writers(backend: Backend) -> set[str]:
    """The live runs that may upload packs (backups; leases of older versions count too)."""
    return {doc["run"] for doc in live_locks(backend) if doc.get("kind") not in ("read", "prune")}


def _stale(backend: Backend, keep: str | None) -> dict[str, list[str]]:
    now = time.time()
    return {run: names for run, (names, doc) in _read_all(backend, skip=keep).items()
            if run != keep and (doc is None or not is_live(doc, now))}


def stale_runs(backend: Backend, keep: str | None = None) -> list[str]:
    """The runs whose leases are stale (their holders are gone)."""
    return sorted(_stale(backend, keep))


def remove_stale(backend: Backend, keep: str | None = None) -> list[str]:
    """Delete the lease objects of runs that are no longer alive; their run ids."""
    gone = []
    for run, names in _stale(backend, keep).items():
        for name in names:
            try:
                backend.remove(name)
            except NotFound:
                pass
        gone.append(run)
    return gone


def describe(docs: list[dict]) -> str:
    """'a backup', 'a verify and a restore' ... for messages."""
    whats = sorted({str(d.get("what") or d.get("kind")) for d in docs})
    return " and ".join(f"a {w}" for w in whats) or "nothing"


def wait_for_no_exclusive(backend: Backend, lease: Lease, doing: str) -> None:
    """After writing ``lease``: return when no live exclusive lease exists, waiting up to
    ``lease.times.wait`` seconds; otherwise release ``lease`` and raise :class:`Locked`."""
    deadline = time.monotonic() + lease.times.wait
    while True:
        others = [d for d in live_locks(backend, skip=lease.run) if d.get("kind") in EXCLUSIVE_KINDS]
        if not others:
            return
        if time.monotonic() >= deadline:
            lease.release()
            raise Locked(f"A prune is running on this repository; try the {doing} again when it finishes "
                         f"(waited {lease.times.wait:g} s; BACKUPFLOW_LEASE_WAIT sets how long).")
        time.sleep(min(0.25, max(0.02, deadline - time.monotonic())))


@contextmanager
def reading(backend: Backend, run: str, what: str) -> Iterator[Lease | None]:
    """Hold a shared ``read`` lease while the body reads, so no prune deletes what it reads.
    A store that refuses the write (read-only credentials or mount) is read without one."""
    lease = Lease(backend, run, "read", what=what)
    try:
        lease.acquire()
    except PermanentError as exc:
        log.warning("reading without a lease (%s): a prune running now could disturb this %s", exc.message, what)
        yield None
        return
    try:
        wait_for_no_exclusive(backend, lease, what)
        yield lease
    finally:
        lease.release()
