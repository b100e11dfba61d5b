"""Pack objects: many blobs in one write-once object, self-describing.

Layout (format version 1)::

    blob_0 blob_1 ... blob_n  header  header_length:u32le  b"BFPACK01"

``header`` is zstd-compressed JSON ``{"v": 1, "run": RUN_ID, "blobs": [[chunk_id, offset,
length, raw_length, flags], ...]}``. The pack's name is ``data/<id[:2]>/<id>`` where ``id`` is the
sha256 of the whole pack, so a pack proves its own integrity and can rebuild the index.
In an encrypted repository the compressed header is sealed (kind ``pack header``), so chunk
ids are not visible, and each blob is sealed by the codec.
"""

from __future__ import annotations

import hashlib
import json
import struct

from storage.crypto import PLAIN, Sealer
from storage.errors import IntegrityError
from storage.layout import pack_name
from storage.objects.codec import Codec

MAGIC = b"BFPACK01"
TRAILER = struct.Struct("<I")
HEADER_KIND = b"pack header"


class PackWriter:
    """Accumulates blobs; ``finish`` returns (pack_id, bytes, entries). Not thread-safe.

    With a ``sink`` (storage.backend.Sink), blobs go to storage as they are added and ``finish``
    commits the pack under its name (the sink hashes what it holds) and returns
    (pack_id, None, entries): no copy of the pack is held in memory. Without one, blobs are
    kept as a list and joined once: the result is ``bytes``, which backends pass on without
    another copy.
    """

    def __init__(self, run: str = "", sink=None, sealer: Sealer = PLAIN):
        # The run id goes into the header so that two chains never share a pack object, even
        # when they pack the same chunks in the same order: corruption stays inside one chain.
        self.run = run
        self._sink = sink
        self._sealer = sealer
        self._blobs: list[bytes] = []
        self._size = 0
        self._entries: list[list] = []

    def __len__(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        return len(self._entries)

    def add(self, chunk_id: str, stored, raw_length: int, flags: int) -> None:
        """``stored`` may be a view of a buffer about to be reused: it is copied or written now."""
        self._entries.append([chunk_id, self._size, len(stored), raw_length, flags])
        self._put(stored)

    def _put(self, data) -> None:
        if self._sink is None:
            self._blobs.append(bytes(data))
        else:
            self._sink.write(data)
        self._size += len(data)

    def finish(self) -> tuple[str, bytes | None, list[list]]:
        doc = {"v": 1, "run": self.run, "blobs": self._entries}
        header = Codec.pack_doc(json.dumps(doc, separators=(",", ":")).encode(), self._sealer, HEADER_KIND)
        for part in (header, TRAILER.pack(len(header)), MAGIC):
            self._put(part)
        if self._sink is not None:
            pack_id = self._sink.sha256()
            self._sink.commit(pack_name(pack_id))
            return pack_id, None, self._entries
        data = b"".join(self._blobs)
        self._blobs = []
        return hashlib.sha256(data).hexdigest(), data, self._entries

    def abort(self) -> None:
        """Drop an unfinished pack (its temporary object, with a sink)."""
        self._blobs = []
        if self._sink is not None:
            self._sink.abort()


def load_pack_header(backend, pack_id: str, sealer: Sealer = PLAIN) -> list[list]:
    """The blob entries of a stored pack, read from its tail alone (two ranged reads)."""
    return load_pack_header_doc(backend, pack_id, sealer)["blobs"]


def load_pack_header_doc(backend, pack_id: str, sealer: Sealer = PLAIN) -> dict:
    """The whole header (``v``, ``run``, ``blobs``) of a stored pack, from its tail alone."""
    name = pack_name(pack_id)
    size = backend.stat(name).size
    if size < 12:
        raise IntegrityError(f"pack {pack_id[:12]} is too short to hold a header")
    tail = backend.load(name, size - 12, 12)
    if tail[-8:] != MAGIC:
        raise IntegrityError(f"pack {pack_id[:12]} has no valid trailer")
    (hlen,) = TRAILER.unpack(tail[:4])
    if hlen > size - 12:
        raise IntegrityError(f"pack {pack_id[:12]} header length is out of range")
    try:
        header = json.loads(Codec.unpack_doc(backend.load(name, size - 12 - hlen, hlen), sealer, HEADER_KIND))
    except (ValueError, IntegrityError) as exc:
        raise IntegrityError(f"pack {pack_id[:12]} header is not valid ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise IntegrityError(f"pack {pack_id[:12]} header is not valid (no list of blobs)")
    return header


def parse_pack(data: bytes, expected_id: str | None = None, sealer: Sealer = PLAIN) -> list[list]:
    """The blob entries of a whole pack, after checking its hash and trailer."""
    if expected_id is not None and hashlib.sha256(data).hexdigest() != expected_id:
        raise IntegrityError(f"pack {expected_id[:12]} does not match its hash")
    if len(data) < 12 or data[-8:] != MAGIC:
        raise IntegrityError("pack trailer is missing or damaged")
    (hlen,) = TRAILER.unpack(data[-12:-8])
    if hlen > len(data) - 12:
        raise IntegrityError("pack header length is out of range")
    try:
        header = json.loads(Codec.unpack_doc(data[-12 - hlen:-12], sealer, HEADER_KIND))
    except (ValueError, IntegrityError) as exc:
        raise IntegrityError(f"pack header is not valid ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise IntegrityError("pack header is not valid (no list of blobs)")
    return header["blobs"]
