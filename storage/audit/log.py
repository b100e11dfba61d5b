"""The audit log itself: append under a lock, query, summarise, verify.

Appending takes an exclusive ``fcntl.flock`` on ``audit.lock`` in the audit directory, reads the
head (hash and count of the newest event), writes one line with a single ``write`` on an
``O_APPEND`` descriptor, fsyncs it, then moves the head. Threads and processes therefore
serialise on the lock: no event is lost and no two lines interleave. The head is what the next
event chains to, so events cut off the end of the log leave a visible break rather than a
silently shorter history.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from storage.audit.types import snake
from storage.audit.chain import (
    FILE_PREFIX, FILE_SUFFIX, GENESIS, HEAD_FILE, VerifyReport, canonical, day_files, day_of,
    event_hash, verify_directory,
)
from storage.audit.anchors import log_id, run_hooks
from storage.errors import InvalidConfig, InvalidInput

_logger = logging.getLogger(__name__)

LOCK_FILE = "audit.lock"
_THREAD_LOCK = threading.Lock()  # flock is per open file; this also orders threads cheaply


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still record something
        return os.environ.get("USER") or f"uid-{os.getuid()}"


def parse_since(value: str | datetime | date | None) -> datetime | None:
    """``2024-05-01``, an ISO time, or a relative age such as ``90m``, ``24h``, ``7d``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    text = value.strip()
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if match:
        n, unit = int(match.group(1)), match.group(2)
        seconds = n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {value!r} is not a date; write it as 2024-05-01, an ISO time, "
                           "or an age like 24h or 7d.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class AuditLog:
    """An append-only, hash-chained JSONL log in ``directory`` (one file per UTC day).

    ``mirror``, if given, is called with each written event (see :mod:`storage.audit.mirror`);
    a mirror failure is logged and never loses the local event. ``clock`` returns the current
    UTC time (tests pass one to write several days' files in a second).
    """

    def __init__(self, directory: str | os.PathLike, mirror=None, clock=None):
        self.directory = Path(directory)
        self.log_id = log_id(self.directory)
        self.mirror = mirror
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # -- writing -----------------------------------------------------------------------------

    def log_event(self, event_type: str, *, user: str | None = None, target: str | None = None,
                  details: dict[str, Any] | None = None, outcome: str | None = None,
                  flow_run_id: str | None = None) -> dict[str, Any]:
        """Append one event and return it (with its id, time and hashes)."""
        if not event_type:
            raise InvalidInput("An audit event needs a type.")
        try:
            event = self._append(event_type, user, target, details, outcome, flow_run_id)
        except OSError as exc:
            raise InvalidConfig(f"Cannot write the audit log in {self.directory} ({exc.strerror or exc}); "
                                "fix [audit] audit_path or BACKUPFLOW_AUDIT_PATH.") from None
        if self.mirror is not None:
            try:
                self.mirror(event)
            except Exception as exc:  # the local log is the record; the mirror is a copy
                _logger.warning("audit event %s was not mirrored: %s", event["id"], exc)
        run_hooks(event, _logger.warning)
        return event

    def _append(self, event_type, user, target, details, outcome, flow_run_id) -> dict[str, Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            prev_hash, count = self._read_head()
            now = self.clock().astimezone(timezone.utc)
            event: dict[str, Any] = {
                "id": uuid.uuid4().hex,
                "time": now.isoformat(timespec="microseconds"),
                "type": event_type,
                "user": user or current_user(),
                "host": socket.gethostname(),
                "flow_run_id": str(flow_run_id) if flow_run_id else None,
                "target": target,
                "details": details or {},
                "outcome": outcome,
                "log": self.log_id,
                "prev_hash": prev_hash,
            }
            event["hash"] = event_hash(event)
            line = canonical(event) + b"\n"
            path = self.directory / f"{FILE_PREFIX}{now.date().isoformat()}{FILE_SUFFIX}"
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                if _ends_without_newline(fd):
                    line = b"\n" + line  # a writer died mid-line; keep its fragment on its own line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(event["hash"], count + 1)
        return event

    # the name the issue and older code use
    log = log_event

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with _THREAD_LOCK:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _read_head(self) -> tuple[str, int]:
        head_path = self.directory / HEAD_FILE
        newest = self._last_event()
        try:
            head = json.loads(head_path.read_text())
            head_hash, count = str(head["hash"]), int(head["count"])
        except FileNotFoundError:
            # an old log without a head: count what is there once
            if newest is None:
                return GENESIS, 0
            return newest["hash"], sum(1 for p in day_files(self.directory) for _ in open(p, "rb"))
        except (ValueError, KeyError, TypeError):
            return (newest or {}).get("hash", GENESIS), 0
        if newest is not None and newest.get("prev_hash") == head_hash and newest.get("hash") != head_hash:
            return newest["hash"], count + 1  # the previous writer died before moving the head
        return head_hash, count

    def _write_head(self, hash_: str, count: int) -> None:
        tmp = self.directory / f".{HEAD_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps({"hash": hash_, "count": count}))
        os.replace(tmp, self.directory / HEAD_FILE)

    def _last_event(self) -> dict[str, Any] | None:
        for path in reversed(day_files(self.directory)):
            line = _last_line(path)
            if line:
                try:
                    return json.loads(line)
                except ValueError:
                    return None
        return None

    # -- reading -----------------------------------------------------------------------------

    def iter_events(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        first_day = since.date().isoformat() if since else None
        for path in day_files(self.directory):
            if first_day and day_of(path) < first_day:
                continue
            with open(path, "r", encoding="utf-8") as fh:
                for line in fh:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # verify() reports damaged lines; queries skip them
                    if isinstance(event, dict):
                        yield event

    def get_events(self, event_type: str | None = None, user: str | None = None,
                   since: str | datetime | date | None = None, limit: int | None = None,
                   target: str | None = None, flow_run_id: str | None = None) -> list[dict[str, Any]]:
        """Matching events, oldest first; ``limit`` keeps the newest N.

        ``event_type`` matches exactly or as a prefix before a dot (``restore`` matches
        ``restore.completed``)."""
        since_dt = parse_since(since)
        out = []
        for event in self.iter_events(since_dt):
            etype = str(event.get("type", ""))
            if event_type and etype != event_type and not etype.startswith(event_type + "."):
                continue
            if user and event.get("user") != user:
                continue
            if target and event.get("target") != target:
                continue
            if flow_run_id and event.get("flow_run_id") != str(flow_run_id):
                continue
            if since_dt and _time_of(event) < since_dt:
                continue
            out.append(event)
        if limit is not None:
            if limit < 0:
                raise InvalidInput("--limit must be zero or more.")
            out = out[-limit:] if limit else []
        return out

    def get_event_summary(self, since: str | datetime | date | None = None) -> dict[str, Any]:
        """Counts: ``total``, ``by_type`` (dotted names), ``by_user``, ``by_outcome``, ``first``,
        ``last``, and each type's count under its snake-case name too (``backup_completed``)."""
        events = self.get_events(since=since)
        by_type = dict(Counter(str(e.get("type")) for e in events))
        return {
            **{snake(t): n for t, n in by_type.items()},
            "total": len(events),
            "by_type": by_type,
            "by_user": dict(Counter(str(e.get("user")) for e in events)),
            "by_outcome": dict(Counter(str(e.get("outcome")) for e in events if e.get("outcome"))),
            "first": events[0]["time"] if events else None,
            "last": events[-1]["time"] if events else None,
        }

    def verify(self) -> VerifyReport:
        return verify_directory(self.directory)


def _time_of(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(event.get("time")))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _last_line(path: Path, block: int = 65536) -> str | None:
    """The last complete line of a file, read from the end (day files can grow large)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        pos, buf = end, b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            stripped = buf.rstrip(b"\n")
            cut = stripped.rfind(b"\n")
            if cut >= 0:
                return stripped[cut + 1:].decode("utf-8", "replace")
        stripped = buf.rstrip(b"\n")
        return stripped.decode("utf-8", "replace") if stripped else None
