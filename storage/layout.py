"""Where each kind of object lives in a repository: the one place that spells the prefixes.

The table in docs/FORMAT.md ("backupflow repository format") is the contract; this module
is its code. Every name but ``config`` and ``locks/*`` ends in the SHA-256 it is checked
against (:func:`object_id`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: the backend layer imports this module
    from storage.backend import Backend

CONFIG = "config"          # written first; a location without it is not a repository
DATA = "data/"             # packs, in 256 folders by the first two hex digits of their id
INDEX = "index/"
SNAPSHOTS = "snapshots/"   # manifests
TREES = "trees/"           # each snapshot's entries
LOCKS = "locks/"           # leases of running backups and prunes (repository/locks.py)
KEYS = "keys/"             # key files wrapping the master key of an encrypted repository (storage/crypto/keys.py)
AUDIT = "audit/"           # the mirror of the audit log, an anchor of its chain (storage/audit/mirror.py)
POLICY = "policy/"         # the approval policy's versions (storage/guardian/stored_policy.py)
VERSIONS = "versions/"     # per-file version history (storage/versions/)
WORKFLOWS = "workflows/"   # a snapshot's export of the Prefect deployments (storage/repository/workflows.py)

OBJECT_ID = re.compile(r"[0-9a-f]{64}")  # what a content-named object's last name part is


def pack_name(pack_id: str) -> str:
    return f"{DATA}{pack_id[:2]}/{pack_id}"


def index_name(index_id: str) -> str:
    return f"{INDEX}{index_id}"


def snapshot_name(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}{snapshot_id}"


def tree_name(tree_id: str) -> str:
    return f"{TREES}{tree_id}"


def object_id(name: str) -> str:
    """The last part of an object's name: the id (hash) of a pack, index, snapshot or tree."""
    return name.rsplit("/", 1)[-1]


def list_packs(backend: Backend) -> dict[str, int]:
    """Every stored pack: id -> size in bytes."""
    return {object_id(o.name): o.size for o in backend.list(DATA)}


def list_ids(backend: Backend, prefix: str) -> list[str]:
    """The ids of the objects under ``prefix`` (INDEX, SNAPSHOTS, TREES), in listing order."""
    return [object_id(o.name) for o in backend.list(prefix)]
