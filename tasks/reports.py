"""The repository's pages in the Prefect UI: a history table and a statistics page per repository.

Each repository gets two artifacts under keys derived from it (``history-<name>-<id8>`` and
``stats-<name>-<id8>``: the last part of its URL and the first 8 hex digits of its id, as
Prefect allows only lowercase letters, digits and dashes in a key), so the UI's Artifacts page
shows one history and one statistics page per repository, each with its versions over time.

Any flow that changes the snapshots calls :func:`publish_history` (backup, forget, archive,
cleanup); backups and verifies call :func:`publish_stats`. Both are plain functions, usable in
any flow or task, and send one artifact each, attached to the current flow run. A server that
does not answer costs the report, never the operation (:func:`tasks.prefect_api.publish`).

Reading the repository for them and sending them costs 0.1-0.2 s, more than the whole
orchestration budget of an unchanged re-backup from the CLI. So the CLI defers them
(:func:`defer_reports`): they are built and sent after the command has told the user its
outcome and exit code, while its process drains its events to the server anyway
(flows.cli.flow_runner). Runs on workers and from Python publish them before the run ends.
"""

from __future__ import annotations

import re
import contextlib
import json
from collections import OrderedDict
from typing import Any, Callable, Iterator

from prefect import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import FlowRunContext, TaskRunContext

from storage import Repository
from storage.archive.meta import list_archives
from storage.backend import display_url
from storage.sizes import human_bytes
from storage.snapshots import Snapshot
from tasks.prefect_api import publish
from tasks.passwords import open_repository
from tasks.repo_access import full_options, in_run_scope, open_repo, read_password_block

# Work to do once the command has answered, or None when it is done at once (see defer_reports).
_DEFERRED: list[Callable[[], None]] | None = None

HISTORY_ROWS = 2000  # a table of more rows is slow to render; the oldest are left out (and counted)


def repository_key(kind: str, repo: Repository) -> str:
    """``<kind>-<last part of the URL>-<first 8 hex digits of the repository id>``: stable for
    the repository wherever it is opened from, readable, and a valid Prefect artifact key."""
    tail = display_url(repo.url).rstrip("/").rsplit("/", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")[:30] or "repo"
    return f"{kind}-{slug}-{repo.config.id[:8].lower()}"


def _when(snap: Snapshot) -> str:
    return snap.time[:19].replace("T", " ")


def history_rows(snaps: list[Snapshot]) -> list[dict[str, Any]]:
    """One row per snapshot, newest first."""
    rows = []
    for s in reversed(snaps[-HISTORY_ROWS:]):
        st = s.stats
        rows.append({
            "time (UTC)": _when(s), "snapshot": s.id[:8], "type": s.type, "tags": ", ".join(s.tags),
            "description": s.description, "size": human_bytes(st.get("bytes_total")), "files": st.get("files", "-"),
            "added": human_bytes(st.get("bytes_added")), "source": s.source,
        })
    return rows


def defer_reports(on: bool) -> None:
    """With ``on``, reports wait for :func:`run_deferred` (the CLI calls it after answering)."""
    global _DEFERRED
    _DEFERRED = [] if on else None


def run_deferred() -> None:
    """Build and send the reports deferred so far; one that fails is skipped, the rest go on."""
    global _DEFERRED
    work, _DEFERRED = _DEFERRED or [], None
    for fn in work:
        try:
            fn()
        except Exception:  # the command has answered already: nobody is left to tell
            continue


def after_run(fn: Callable[[], None]) -> None:
    """Run ``fn`` now, or once the command has answered when reports are deferred."""
    if _DEFERRED is None:
        fn()
    else:
        _DEFERRED.append(fn)


def _flow_run_id() -> str | None:
    from_run = FlowRunContext.get()
    return str(from_run.flow_run.id) if from_run and from_run.flow_run else None


def _send(what: str, kind: str, key: str, data: str, description: str | None, flow_run_id: str | None,
          task_run_id: str | None = None) -> None:
    def create() -> None:
        with get_client(sync_client=True) as client:
            client.create_artifact(ArtifactCreate(type=kind, key=key, data=data, description=description,
                                                  flow_run_id=flow_run_id, task_run_id=task_run_id))
    publish(what, create)


def publish_run_report(what: str, kind: str, key: str, data: str, description: str | None = None) -> None:
    """An artifact of the current flow and task run (``kind`` "table": ``data`` is the rows as
    JSON; "markdown": the text), sent now, or from the CLI once the command has answered
    (:func:`after_run`): the person at the terminal does not wait for the UI's copy."""
    task_run = TaskRunContext.get()
    task_run_id = str(task_run.task_run.id) if task_run and task_run.task_run else None
    flow_run_id = _flow_run_id()
    after_run(lambda: _send(what, kind, key, data, description, flow_run_id, task_run_id))


@contextlib.contextmanager
def _repository(url: str, options: dict[str, Any] | None, refresh: bool) -> Iterator[Repository]:
    """The run's repository at ``url``, or (deferred, after the run) one opened for the report."""
    if in_run_scope():
        yield open_repo(url, options or {}, refresh=refresh)
        return
    with open_repository(url, full_options(url, options), read_block=read_password_block) as r:
        yield r


def publish_history(repo: str, options: dict[str, Any] | None = None) -> None:
    """Publish the history table of the repository at URL ``repo``: every snapshot with its
    time, type, size, files, bytes added, tags and description, newest first. Call it after
    anything that adds or removes snapshots."""
    flow_run_id = _flow_run_id()

    def send() -> None:
        with _repository(repo, options, refresh=False) as r:
            snaps = r.snapshots.all()
            left_out = max(0, len(snaps) - HISTORY_ROWS)
            note = f"; the {left_out} oldest are not listed" if left_out else ""
            _send("history", "table", repository_key("history", r), json.dumps(history_rows(snaps)),
                  f"Snapshots of {display_url(r.url)}: {len(snaps)}{note}", flow_run_id)
    after_run(send)


def growth(snaps: list[Snapshot]) -> list[tuple[str, int, int, int]]:
    """(month, snapshots made, bytes they added, bytes added up to its end), oldest first."""
    months: OrderedDict[str, list[int]] = OrderedDict()
    for s in snaps:
        row = months.setdefault(s.time[:7], [0, 0])
        row[0] += 1
        row[1] += int(s.stats.get("bytes_added", 0))
    total = 0
    out = []
    for month, (count, added) in months.items():
        total += added
        out.append((month, count, added, total))
    return out


def stats_markdown(r: Repository, archive: dict[str, Any] | None = None) -> str:
    st = r.stats()
    snaps = r.snapshots.all()
    where = display_url(r.url)
    lines = [f"## Repository {where}", "", "| figure | value |", "|---|---|",
             f"| snapshots | {st.snapshots} in {st.chains} chain(s) |",
             f"| data backed up (all snapshots) | {human_bytes(st.bytes_logical)} |",
             f"| unique data | {human_bytes(st.bytes_unique_raw)} |",
             f"| stored (packs) | {human_bytes(st.bytes_stored)} in {st.packs} pack(s) |",
             f"| deduplication ratio | {st.dedup_ratio if st.dedup_ratio is not None else '-'} |",
             f"| compression ratio | {st.compression_ratio if st.compression_ratio is not None else '-'} |"]
    if snaps:
        lines += [f"| oldest | {snaps[0].id[:8]} {_when(snaps[0])} |",
                  f"| newest | {snaps[-1].id[:8]} {_when(snaps[-1])} |"]
    if st.damaged_snapshots:
        lines.append(f"| unreadable snapshots | {len(st.damaged_snapshots)} |")
    if archive:
        lines += [f"| {k} | {v} |" for k, v in archive.items()]
    lines += ["", "### Growth", "", "| month | snapshots | added | stored by then |", "|---|---|---|---|"]
    lines += [f"| {m} | {n} | {human_bytes(a)} | {human_bytes(t)} |" for m, n, a, t in growth(snaps)]
    return "\n".join(lines) + "\n"


def archive_totals(r: Repository, dest: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Label -> value rows for this repository's archives at ``dest`` (none: no rows)."""
    mine = [m for m in list_archives(dest, options) if m.repository_id in ("", r.config.id)]
    if not mine:
        return {}
    return {"archives": f"{len(mine)} at {display_url(dest)}",
            "archived data": f"{human_bytes(sum(m.content_bytes for m in mine))} in "
                             f"{human_bytes(sum(m.bytes for m in mine))} of tar.gz",
            "oldest archived": f"{mine[0].id[:8]} {mine[0].time[:19].replace('T', ' ')}"}


def publish_stats(repo: str, options: dict[str, Any] | None = None,
                  archive: dict[str, Any] | None = None, refresh: bool = True,
                  archive_at: str | None = None, archive_options: dict[str, Any] | None = None) -> None:
    """Publish the statistics page of the repository at URL ``repo``: totals, deduplication and compression ratios,
    oldest and newest snapshot, growth by month, and ``archive`` totals (label -> value) when
    given, or the totals of its archives at URL ``archive_at``. ``refresh=False`` right after a
    commit reuses the index the run has read."""
    flow_run_id = _flow_run_id()

    def send() -> None:
        with _repository(repo, options, refresh) as r:
            rows = {**(archive_totals(r, archive_at, archive_options) if archive_at else {}), **(archive or {})}
            _send("statistics", "markdown", repository_key("stats", r), stats_markdown(r, rows),
                  f"Statistics of {display_url(r.url)}", flow_run_id)
    after_run(send)
