"""Mirror audit events into a repository as write-once objects, so a cloud repository carries
its own trail even if the machine that wrote the local log is lost.

Each event becomes ``audit/<YYYY-MM-DD>/<time>-<hash>.json`` holding its canonical JSON: the
name sorts in time order and carries the hash, so every object checks itself and the mirrored
events form the same chain as the local log. Objects are saved with ``exclusive=True``, so
an existing event can never be replaced by different content.
"""

from __future__ import annotations

import json
from typing import Any

from storage.audit.chain import canonical, event_hash
from storage.backend import Backend
from storage.errors import IntegrityError
from storage.layout import AUDIT

PREFIX = AUDIT


def object_name(event: dict[str, Any]) -> str:
    time = str(event["time"])
    stamp = time.replace("-", "").replace(":", "").replace("+0000", "Z").replace(".", "")
    return f"{PREFIX}{time[:10]}/{stamp}-{event['hash']}.json"


class RepositoryMirror:
    """A callable for :class:`~storage.audit.log.AuditLog` ``mirror=``: saves each event."""

    def __init__(self, backend: Backend):
        self.backend = backend

    def __call__(self, event: dict[str, Any]) -> None:
        self.backend.save(object_name(event), canonical(event), exclusive=True)


def read_mirror(backend: Backend) -> list[dict[str, Any]]:
    """Every mirrored event, oldest first; raises IntegrityError on an object whose content
    does not match the hash in its name."""
    events = []
    for info in sorted(backend.list(PREFIX), key=lambda i: i.name):
        event = json.loads(backend.load(info.name))
        if not info.name.endswith(f"-{event_hash(event)}.json"):
            raise IntegrityError(f"The mirrored audit event {info.name} does not match its hash; "
                                 "the repository trail was altered.")
        events.append(event)
    return events
