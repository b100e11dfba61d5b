"""Content-defined chunking with FastCDC (pyfastcdc, Cython, runs outside the GIL).

The gear table is seeded from a per-repository secret, so the positions of chunk boundaries
do not reveal which known content a repository holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator, Protocol

from pyfastcdc import FastCDC


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = 256 * 1024
    avg_size: int = 768 * 1024
    max_size: int = 4 * 1024 * 1024
    seed: int = 0

    def to_json(self) -> dict:
        return {"min": self.min_size, "avg": self.avg_size, "max": self.max_size, "seed": self.seed}

    @classmethod
    def from_json(cls, d: dict) -> "ChunkerParams":
        return cls(d["min"], d["avg"], d["max"], d["seed"])


def chunk_id(data) -> str:
    return hashlib.sha256(data).hexdigest()


class Chunker:
    """Cuts buffers and files into chunks. One instance per thread (pyfastcdc is not re-entrant).

    Files are read into one window of twice the largest chunk, kept for the life of the
    chunker: a fresh buffer per file (pyfastcdc's cut_stream zeroes a new 8 MiB one; ``read()``
    maps new pages for every file over 1 MiB) cost half of a first backup's page faults.
    """

    def __init__(self, params: ChunkerParams):
        self.params = params
        self._cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=params.seed)
        self._buf: bytearray | None = None

    def cut(self, data) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer. A buffer no longer than ``min_size`` is one chunk."""
        if len(data) <= self.params.min_size:
            return iter((memoryview(data),))  # most files: no generator to step through
        return (c.data for c in self._cdc.cut_buf(data))

    def window(self) -> int:
        """Size of the read window: a file shorter than this is read and cut in one piece."""
        return 2 * self.params.max_size

    def cut_file(self, f: Readable, size: int) -> Iterator[memoryview]:
        """Chunks of an open file of ``size`` bytes (its size when it was opened). A file
        shorter than the window is read whole, now, and its views stay valid until the next
        file; for a longer one, each view is valid only until the next one is produced. A short
        file is read no further than ``size``: one that grew since is seen to have changed by
        the caller, which compares the file's size after the read (file_saver.py), so no read
        is spent on finding its end."""
        if size < self.window():
            view = memoryview(self._window())[:size]
            return self.cut(view[:_fill(f, view, 0)])
        return self.cut_stream(f)

    def cut_stream(self, f: Readable) -> Iterator[memoryview]:
        """Chunks of a stream; each view is valid only until the next one is produced.

        Boundaries are the same as cutting the whole content at once: only the last chunk of a
        window is uncertain, and it is carried into the next window."""
        buf = self._window()
        view = memoryview(buf)
        filled = 0
        while True:
            filled = _fill(f, view, filled)
            eof = filled < len(buf)
            if filled == 0:
                return
            start = 0
            for c in self._cdc.cut_buf(view[:filled]):
                end = c.offset + c.length
                if end == filled and not eof:
                    break  # the window's last chunk may grow: carry it over
                yield view[c.offset:end]
                start = end
            if eof and start == filled:
                return
            buf[:filled - start] = buf[start:filled]
            filled -= start

    def _window(self) -> bytearray:
        if self._buf is None:
            self._buf = bytearray(self.window())
        return self._buf


class Readable(Protocol):
    """An open binary file: what the chunker reads from."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _fill(f: Readable, view: memoryview, filled: int) -> int:
    """Read into ``view[filled:]`` until it is full or the file ends; the new fill level."""
    while filled < len(view):
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled
