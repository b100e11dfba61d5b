"""File names in trees: bytes on POSIX, carried as ``str`` the way Python's ``os`` does.

A name that is not valid UTF-8 (``bad\\xff``) is decoded with ``surrogateescape`` by
``os.scandir`` and ``os.fsdecode``, so each undecodable byte becomes one lone surrogate
(``\\udcff``); ``os.fsencode`` and every ``os`` call turn it back into the same byte. Trees keep
such names as JSON ``\\udcXX`` escapes (docs/FORMAT.md), which ``json.loads`` reads back into
the same ``str``: readers need do nothing special to restore, list or compare them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from storage.errors import InvalidInput


def shown(name: str) -> str:
    """``name`` for people, logs and JSON reports: an undecodable byte shows as ``\\xff``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def dump_json(doc: Any) -> bytes:
    """Compact, key-sorted JSON as UTF-8. When a string holds an undecodable name, the whole
    document is written ASCII-only, so the name is a ``\\udcXX`` escape (valid JSON, valid
    UTF-8) rather than bytes no UTF-8 reader accepts."""
    text = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def dump_tree(entries: list[Any]) -> bytes:
    """``dump_json`` of a snapshot's tree, the same bytes, by orjson: the standard encoder took
    a fifth of a second of the single-threaded end of a first backup of 20,000 files. A name
    that is not valid UTF-8 (orjson refuses lone surrogates) goes the standard way."""
    try:
        return orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return dump_json(entries)


def load_tree_json(data: bytes) -> Any:
    """A tree's JSON read back: by orjson (a quarter faster on 20,000 entries, on the path of
    every restore and re-backup), or the standard way for what orjson refuses (the ``\\udcXX``
    escapes of names that are not valid UTF-8), so the result is always what ``json.loads`` gives."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def require_text(value: str, what: str, fix: str) -> None:
    """Refuse ``value`` (an argument that is recorded as text, such as a flow parameter) when
    it holds bytes that are not UTF-8: one sentence naming it, with ``fix``."""
    if shown(value) != value:
        raise InvalidInput(f"{what} {shown(value)} is not valid UTF-8, which the run record cannot hold; {fix}.")
