"""Mirror audit events into a repository as write-once objects, so a cloud repository carries
its own trail even if the machine that wrote the local log is lost.

Each event becomes ``audit/<YYYY-MM-DD>/<time>-<hash>.json`` holding its canonical JSON: the
name sorts in time order and carries the hash, so every object checks itself and the mirrored
events form the same chain as the local log. Objects are saved with ``exclusive=True``, so
an existing event can never be replaced by different content. On S3 with Object Lock
(``object_lock_days``) the objects cannot be deleted or overwritten before their retention
ends, not even by the writer: the mirror is then an anchor the writer cannot rewrite.
"""

from __future__ import annotations

import json
from typing import Any

from storage.audit.anchors import Anchor
from storage.audit.chain import canonical, event_hash
from storage.backend import Backend
from storage.errors import IntegrityError, NotFound
from storage.layout import AUDIT, CONFIG

PREFIX = AUDIT
REPOSITORY_MARKER = CONFIG  # every repository has it


def object_name(event: dict[str, Any]) -> str:
    time = str(event["time"])
    stamp = time.replace("-", "").replace(":", "").replace("+0000", "Z").replace(".", "")
    return f"{PREFIX}{time[:10]}/{stamp}-{event['hash']}.json"


class RepositoryMirror:
    """A callable for :class:`~storage.audit.log.AuditLog` ``mirror=``: saves each event."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._repository: bool | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        # Only into a repository that exists: the event that starts a first backup comes before
        # the repository is created, and an empty location must stay empty until then.
        if self._repository is None:
            try:
                self.backend.stat(REPOSITORY_MARKER)
                self._repository = True
            except NotFound:
                self._repository = False
        if self._repository:
            self.backend.save(object_name(event), canonical(event), exclusive=True)


def read_mirror(backend: Backend, log: str | None = None) -> list[dict[str, Any]]:
    """Every mirrored event (of the log with id ``log``, when given), oldest first; raises
    IntegrityError on an object whose content does not match the hash in its name."""
    events = []
    for info in sorted(backend.list(PREFIX), key=lambda i: i.name):
        event = json.loads(backend.load(info.name))
        if not info.name.endswith(f"-{event_hash(event)}.json"):
            raise IntegrityError(f"The mirrored audit event {info.name} does not match its hash; "
                                 "the repository trail was altered.")
        if log is None or event.get("log") == log:
            events.append(event)
    return events


def mirror_anchors(backend: Backend, log: str) -> list[Anchor]:
    """The mirrored events of one log, as anchors for :func:`~storage.audit.anchors.cross_check`."""
    return [Anchor(str(e.get("id")), str(e.get("time")), str(e.get("hash")), "the repository")
            for e in read_mirror(backend, log)]
