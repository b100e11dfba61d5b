"""Differences between two versions: a unified diff for text, one line for binary content."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from storage.sizes import human_bytes

if TYPE_CHECKING:
    from storage.versions.records import Version


def as_text(data: bytes) -> str | None:
    """The content as text, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def diff_contents(a: Version, data_a: bytes, b: Version, data_b: bytes, context: int = 3) -> str:
    """A unified diff (``--- path@id`` / ``+++ path@id``) when both are text; otherwise one line
    that says whether the binary contents differ, with both sizes and hashes. Identical
    contents give an empty string."""
    if a.content_hash == b.content_hash:
        return ""
    text_a, text_b = as_text(data_a), as_text(data_b)
    if text_a is None or text_b is None:
        return (f"Binary contents differ: {a.file_path}@{a.version_id} ({human_bytes(len(data_a))}, sha256 "
                f"{a.content_hash[:12]}) and {b.file_path}@{b.version_id} ({human_bytes(len(data_b))}, sha256 "
                f"{b.content_hash[:12]})\n")
    lines = difflib.unified_diff(text_a.splitlines(keepends=True), text_b.splitlines(keepends=True),
                                 f"{a.file_path}@{a.version_id}", f"{b.file_path}@{b.version_id}", n=context)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
