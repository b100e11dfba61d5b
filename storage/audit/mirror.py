"""Mirror audit events into a repository as write-once objects, so a cloud repository carries
its own trail even if the machine that wrote the local log is lost.

Each event becomes ``audit/<YYYY-MM-DD>/<time>-<hash>.json`` holding its canonical JSON: the
name sorts in time order and carries the hash, so every object checks itself and the mirrored
events form the same chain as the local log. Objects are saved with ``exclusive=True``, so
an existing event can never be replaced by different content. On S3 with Object Lock
(``object_lock_days``) the objects cannot be deleted or overwritten before their retention
ends, not even by the writer: the mirror is then an anchor the writer cannot rewrite.

In an encrypted repository an event is sealed (kind ``audit event``) with the repository's
sealer, so the bucket does not show sources, targets or users; a mirror without the sealer
writes nothing there (never plaintext events into an encrypted repository).
"""

from __future__ import annotations

import json
from typing import Any

from storage.audit.anchors import Anchor
from storage.audit.chain import canonical, event_hash
from storage.backend import Backend
from storage.crypto import PLAIN, Sealer, sealed_repository
from storage.errors import BackupError, IntegrityError, NotFound, PasswordRequired
from storage.layout import AUDIT, CONFIG

PREFIX = AUDIT
REPOSITORY_MARKER = CONFIG  # every repository has it
KIND = b"audit event"


def object_name(event: dict[str, Any]) -> str:
    time = str(event["time"])
    stamp = time.replace("-", "").replace(":", "").replace("+0000", "Z").replace(".", "")
    return f"{PREFIX}{time[:10]}/{stamp}-{event['hash']}.json"


class RepositoryMirror:
    """A callable for :class:`~storage.audit.log.AuditLog` ``mirror=``: saves each event."""

    def __init__(self, backend: Backend, sealer: Sealer = PLAIN):
        self.backend = backend
        self.sealer = sealer
        self._repository: bool | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        # Only into a repository that exists: the event that starts a first backup comes before
        # the repository is created, and an empty location must stay empty until then.
        if self._repository is None:
            try:
                sealed = sealed_repository(self.backend.load(REPOSITORY_MARKER))
                self._repository = self.sealer.encrypted or not sealed
            except NotFound:
                self._repository = False
        if self._repository:
            data = canonical(event)
            if self.sealer.encrypted:
                data = self.sealer.seal(KIND, data)
            self.backend.save(object_name(event), data, exclusive=True)


def _load_event(backend: Backend, name: str, sealer: Sealer) -> dict[str, Any]:
    try:
        data = sealer.open(KIND, backend.load(name)) if sealer.encrypted else backend.load(name)
        event = json.loads(data)
    except (BackupError, ValueError) as exc:
        raise IntegrityError(f"The mirrored audit event {name} cannot be read (damaged or altered); "
                             "the repository trail was altered.") from exc
    if not isinstance(event, dict):
        raise IntegrityError(f"The mirrored audit event {name} is not an event; the repository trail was altered.")
    return event


def _encrypted(backend: Backend) -> bool:
    try:
        return sealed_repository(backend.load(REPOSITORY_MARKER))
    except NotFound:
        return False


def read_mirror(backend: Backend, log: str | None = None, sealer: Sealer = PLAIN) -> list[dict[str, Any]]:
    """Every mirrored event (of the log with id ``log``, when given), oldest first; raises
    IntegrityError on an object whose content does not match the hash in its name, and
    PasswordRequired for an encrypted repository's events without its ``sealer``."""
    infos = sorted(backend.list(PREFIX), key=lambda i: i.name)
    if infos and not sealer.encrypted and _encrypted(backend):
        raise PasswordRequired("The repository is encrypted; its mirrored audit events need its password.")
    events = []
    for info in infos:
        event = _load_event(backend, info.name, sealer)
        if not info.name.endswith(f"-{event_hash(event)}.json"):
            raise IntegrityError(f"The mirrored audit event {info.name} does not match its hash; "
                                 "the repository trail was altered.")
        if log is None or event.get("log") == log:
            events.append(event)
    return events


def mirror_anchors(backend: Backend, log: str, sealer: Sealer = PLAIN) -> list[Anchor]:
    """The mirrored events of one log, as anchors for :func:`~storage.audit.anchors.cross_check`."""
    return [Anchor(str(e.get("id")), str(e.get("time")), str(e.get("hash")), "the repository")
            for e in read_mirror(backend, log, sealer)]
