"""Tasks of the panel deployments (flows/panel.py) that the other flows do not have: the
preview diff and its markdown artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from storage.sizes import human_bytes
from tasks.repo_access import open_repo
from tasks.retry import TASK_OPTIONS

SHOWN = 500  # rows per section in the artifact; the counts are always complete


def _rows(title: str, rows: list[list[Any]], columns: str) -> list[str]:
    out = [f"### {title} ({len(rows)})", ""]
    if not rows:
        return out + ["none", ""]
    out += [f"| path | {columns} |", "|---|" + "---|" * columns.count("|") + "---|"]
    for row in rows[:SHOWN]:
        sizes = " | ".join(human_bytes(n) for n in row[1:])
        out.append(f"| `{row[0]}` | {sizes} |")
    if len(rows) > SHOWN:
        out.append(f"| ... and {len(rows) - SHOWN} more | |")
    return out + [""]


def diff_markdown(diff: dict[str, Any]) -> str:
    new = diff["new"] if "/" in diff["new"] else f"snapshot {diff['new'][:8]}"
    lines = [f"## Preview diff: snapshot {diff['old'][:8]} -> {new}", ""]
    lines += _rows("Added", diff["added"], "size")
    lines += _rows("Removed", diff["removed"], "size")
    lines += _rows("Changed", diff["changed"], "size before | size now")
    return "\n".join(lines)


@task(name="preview_diff", **TASK_OPTIONS)
def preview_diff(repo: str, options: dict[str, Any], snapshot: str, compare_with: str | None) -> dict[str, Any]:
    diff = open_repo(repo, options).preview_diff(snapshot, compare_with).to_dict()
    create_markdown_artifact(diff_markdown(diff), description=f"What changed since snapshot {diff['old'][:8]}")
    return diff
