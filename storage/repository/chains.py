"""A chain that vanishes under a running backup.

An incremental or differential backup reads data from its chain (its base full and, for an
incremental, the snapshots before it). If ``forget`` removes those snapshots while the backup
runs, committing it would make a snapshot whose chain is gone: verify would report its chunk
references outside its chain for ever. So the commit checks that its base and parent are
still there, before writing its manifest and again after (a forget may land in between: then
the new manifest is removed again). Either way the run fails with :class:`ChainGone`;
``Repository.backup`` and the backup flow then run it again as a new full, which adopts the
packs the failed run uploaded (they are unclaimed once its lease is gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.errors import ChainGone, NotFound
from storage.snapshots import Snapshot
from storage.snapshots.manifest import snapshot_name

if TYPE_CHECKING:  # the repository imports this module
    from storage.repository.repository import Repository


def _missing(repo: Repository, plan) -> list[str]:
    missing = []
    for sid in dict.fromkeys(s for s in (plan.base_full, plan.parent) if s):
        try:
            repo.backend.stat(snapshot_name(sid))
        except NotFound:
            missing.append(sid)
    return missing


def _error(plan, missing: list[str]) -> ChainGone:
    return ChainGone(f"The {plan.type} backup's chain was forgotten while it ran (snapshot(s) "
                     f"{', '.join(m[:8] for m in missing)} are gone); nothing was committed. Run the backup "
                     "again: it starts a new full and reuses what this run uploaded.")


def check_base(repo: Repository, plan) -> None:
    """Raise ChainGone when the snapshots the run depends on are no longer there."""
    if plan.type == "full":
        return
    missing = _missing(repo, plan)
    if missing:
        raise _error(plan, missing)


def undo_if_base_gone(repo: Repository, plan, snap: Snapshot) -> None:
    """After the manifest is written: if the chain vanished meanwhile, remove it and raise."""
    if plan.type == "full":
        return
    missing = _missing(repo, plan)
    if not missing:
        return
    try:
        repo.backend.remove(snapshot_name(snap.id))
    except NotFound:
        pass
    repo.refresh()
    raise _error(plan, missing)
