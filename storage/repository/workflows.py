"""The workflows a backup carries (``include_workflows``): an export of backupflow's Prefect
deployments, schedules and automations, made by the flow layer (flows/workflows.py) and kept
here as plain data, never with a secret in it.

One object per snapshot, ``workflows/<snapshot id>``, compressed and, in an encrypted
repository, sealed like a manifest. It is written right after the snapshot's manifest (the
export describes the run that made it); a backup killed between the two leaves a snapshot
without one, which ``load_workflows`` reports in one sentence. Forgetting the snapshot removes
it (SnapshotStore.remove does not know it; :func:`remove_workflows` is called beside it).
"""

from __future__ import annotations

import json
from typing import Any

from storage.backend import Backend
from storage.config import BackupSettings
from storage.crypto import Sealer
from storage.errors import AlreadyExists, NotFound
from storage.layout import VERSIONS, WORKFLOWS
from storage.objects import Codec

KIND = b"workflows"
# Tags that say what a snapshot carries besides the workspace (the Python API reads them too).
CARRIES_VERSIONS = "bf:versions"
CARRIES_WORKFLOWS = "bf:workflows"


def carried_tags(tags: list[str], settings: BackupSettings, workflows: bool | None = None) -> list[str]:
    """``tags`` plus the mark of a workflows export (None: as the configuration says)."""
    marks = [CARRIES_WORKFLOWS] * (settings.include_workflows if workflows is None else workflows)
    return list(dict.fromkeys([*tags, *marks]))


def with_versions_mark(tags: list[str], backend: Backend) -> list[str]:
    """``include_versions``: a snapshot of a repository that keeps version history says so; the
    history it carries is every version up to the snapshot's time (versions are never rewritten,
    so the snapshot's time is the reference an archive or a restore reads them up to)."""
    if next(iter(backend.list(VERSIONS)), None) is None:
        return tags  # nothing to carry
    return list(dict.fromkeys([*tags, CARRIES_VERSIONS]))


def workflows_name(snapshot_id: str) -> str:
    return WORKFLOWS + snapshot_id


def save_workflows(backend: Backend, sealer: Sealer, snapshot_id: str, export: dict[str, Any]) -> str:
    data = json.dumps(export, sort_keys=True, default=str).encode()
    name = workflows_name(snapshot_id)
    try:
        backend.save(name, Codec.pack_doc(data, sealer, KIND), exclusive=True)
    except AlreadyExists:
        pass  # a rerun of the same step: the first export stays
    return name


def load_workflows(backend: Backend, sealer: Sealer, snapshot_id: str) -> dict[str, Any]:
    try:
        raw = backend.load(workflows_name(snapshot_id))
    except NotFound:
        raise NotFound(f"snapshot {snapshot_id[:8]} carries no workflows export (it was made without "
                       "include_workflows, or its backup ended before saving it).") from None
    return json.loads(Codec.unpack_doc(raw, sealer, KIND))


def remove_workflows(backend: Backend, snapshot_ids: list[str]) -> None:
    for sid in snapshot_ids:
        try:
            backend.remove(workflows_name(sid))
        except NotFound:
            pass
