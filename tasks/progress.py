"""A process-local progress sink, so the CLI can draw a bar for work done inside tasks.

Callbacks cannot be task parameters (they are not plain data), so the CLI installs one here
before it runs a flow in the same process; without one, progress goes nowhere.
"""

from __future__ import annotations

from typing import Callable

Reporter = Callable[[str, int, int, int, int], None]  # (stage, done items, total items, done bytes, total bytes)
_reporter: Reporter | None = None


def set_reporter(fn: Reporter | None) -> None:
    global _reporter
    _reporter = fn


def reporter_for(stage: str, total_items: int, total_bytes: int):
    fn = _reporter
    if fn is None:
        return None
    fn(stage, 0, total_items, 0, total_bytes)
    return lambda items, nbytes: fn(stage, items, total_items, nbytes, total_bytes)
