"""One exclusive slot per repository in Prefect, so the UI shows who waits for whom.

The leases in the repository (docs/FORMAT.md, "leases") are what keeps data safe, on every host
and without a server too. Where a Prefect server is present, a prune also holds the single slot
of the global concurrency limit ``backupflow-exclusive-<repository id>``: the Concurrency page
of the UI then shows the prune holding it, and a second prune of the same repository (from any
worker, under any URL of it) waits there for up to ``BACKUPFLOW_LEASE_WAIT`` seconds and then
stands down with :class:`Locked`, as it would on the leases.

The slot is held under a Prefect lease that this process renews; if the process dies (a
worker's machine lost mid-prune) the server's repossessor frees the slot when the lease runs
out, ``BACKUPFLOW_SLOT_LEASE`` seconds after the last renewal (default 120, Prefect's minimum
60), not after Prefect's default of 5 minutes.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from storage import LeaseTimes
from storage.errors import InvalidConfig, Locked

log = logging.getLogger("backupflow.coordination")


SLOT_LEASE_SECONDS = 120.0


def slot_lease_seconds() -> float:
    raw = os.environ.get("BACKUPFLOW_SLOT_LEASE", "").strip()
    try:
        return max(float(raw), 60.0) if raw else SLOT_LEASE_SECONDS
    except ValueError:
        raise InvalidConfig(f"BACKUPFLOW_SLOT_LEASE={raw!r} is not a number of seconds; "
                            "set it to one such as 120.") from None


def slot_name(repo_id: str) -> str:
    return f"backupflow-exclusive-{repo_id[:16]}"


@contextmanager
def exclusive_slot(repo_id: str) -> Iterator[None]:
    """Hold the repository's exclusive slot for the body; Locked when another run holds it
    past the wait. Without a reachable server the leases alone coordinate (logged)."""
    name = slot_name(repo_id)
    try:
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, 1)
    except Exception as exc:  # noqa: BLE001  (any failure here only loses the UI's view)
        log.warning("no Prefect concurrency slot for this prune (%s); the repository's leases still apply",
                    type(exc).__name__)
        yield
        return
    wait = LeaseTimes.from_env().wait
    acquired = False
    try:
        with concurrency(name, occupy=1, timeout_seconds=max(wait, 1.0), strict=True,
                         lease_duration=slot_lease_seconds()):
            acquired = True
            yield
    except TimeoutError:
        if acquired:
            raise
        raise Locked(f"Cannot prune: another prune of this repository holds the Prefect concurrency limit {name} "
                     f"(waited {max(wait, 1.0):g} s); try again when it finishes.") from None
