"""The hash chain: how an event is hashed and how a whole log is checked.

An event's ``hash`` is the sha256 of its canonical JSON (sorted keys, no spaces) without the
``hash`` field; ``prev_hash`` is the hash of the event written just before it, across day files,
and :data:`GENESIS` for the very first event. So editing an event breaks its own hash, and
inserting, deleting or reordering events breaks the ``prev_hash`` link of the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

GENESIS = "0" * 64
FILE_PREFIX = "audit_"
FILE_SUFFIX = ".jsonl"
HEAD_FILE = "audit.head"


def canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def event_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def day_files(directory: Path) -> list[Path]:
    """The day files in chronological order (their names sort by date)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.startswith(FILE_PREFIX) and p.name.endswith(FILE_SUFFIX))


def day_of(path: Path) -> str:
    return path.name[len(FILE_PREFIX):-len(FILE_SUFFIX)]


@dataclass
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.message}"


@dataclass
class VerifyReport:
    """What :func:`verify_directory` found; ``ok`` only when the whole chain holds."""

    events: int = 0
    files: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "files": self.files,
                "problems": [{"file": p.file, "line": p.line, "message": p.message} for p in self.problems]}


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "r", encoding="utf-8", newline="\n") as fh:
        for number, line in enumerate(fh, start=1):
            yield number, line


def verify_directory(directory: Path) -> VerifyReport:
    """Walk every day file in order and report each broken link, naming file and line."""
    report = VerifyReport()
    prev: str | None = GENESIS
    last_prev: str | None = None
    seen_ids: dict[str, str] = {}
    for path in day_files(directory):
        report.files += 1
        day = day_of(path)
        for number, line in iter_lines(path):
            where = path.name
            if not line.endswith("\n"):
                report.problems.append(Problem(where, number, "the line is incomplete (a write was cut short)"))
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError("not an object")
            except ValueError:
                report.problems.append(Problem(where, number, "the line is not a valid JSON event (edited or damaged)"))
                prev = None  # the next link cannot be checked against an unreadable line
                continue
            report.events += 1
            stored = event.get("hash")
            if stored != event_hash(event):
                report.problems.append(Problem(where, number, f"event {event.get('id')} was edited: "
                                                              "its content does not match its hash"))
            if prev is not None and event.get("prev_hash") != prev:
                report.problems.append(Problem(
                    where, number,
                    f"the chain is broken before event {event.get('id')}: an event before it was deleted, "
                    "inserted or moved (or a whole day file is missing)"))
            if not str(event.get("time", "")).startswith(day):
                report.problems.append(Problem(where, number, f"event {event.get('id')} is dated "
                                                              f"{event.get('time')} but sits in the file for {day}"))
            eid = str(event.get("id"))
            if eid in seen_ids:
                report.problems.append(Problem(where, number, f"event {eid} appears twice (first in {seen_ids[eid]})"))
            seen_ids[eid] = f"{where} line {number}"
            last_prev = event.get("prev_hash")
            prev = stored if isinstance(stored, str) else None
    _check_head(directory, report, prev, last_prev)
    return report


def _check_head(directory: Path, report: VerifyReport, last_hash: str | None, last_prev: str | None) -> None:
    """The head records the newest event's hash, so cutting events off the end is seen too."""
    head_path = directory / HEAD_FILE
    if not head_path.is_file():
        return
    try:
        head = json.loads(head_path.read_text())
        head_hash, head_count = head["hash"], int(head["count"])
    except (ValueError, KeyError, TypeError):
        report.problems.append(Problem(HEAD_FILE, 1, "the head record is damaged"))
        return
    if head_hash == last_hash:
        return
    if last_prev == head_hash and report.events == head_count + 1:
        return  # a writer stopped between appending its event and moving the head: harmless
    if report.events <= head_count:
        report.problems.append(Problem(
            HEAD_FILE, 1,
            f"the log ends before its last recorded event (event {head_count}, hash {head_hash[:12]}): "
            "events were deleted from the end"))
    else:
        report.problems.append(Problem(
            HEAD_FILE, 1, f"the head record (event {head_count}) does not match the newest event in the log"))
