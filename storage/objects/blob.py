"""Reading a chunk back: the one place a stored blob becomes trusted bytes.

restore, export and verify all read chunks through :func:`read_blob`, so a damaged or
substituted blob is refused the same way everywhere (docs/FORMAT.md, "chunks and blobs").
"""

from __future__ import annotations

import hashlib

from storage.errors import IntegrityError
from storage.objects.codec import Codec
from storage.objects.index import BlobLocation

# The content hash of an empty file: a file with no chunks.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def read_blob(codec: Codec, stored: bytes | memoryview, loc: BlobLocation, chunk_id: str,
              path: str | None = None, reuse: bool = False) -> bytes:
    """The chunk ``chunk_id`` decoded from ``stored`` (its blob at ``loc``), after checking
    its length and id (SHA-256, or the keyed id of an encrypted repository). With ``reuse``,
    it may be a view of a buffer the next read on this thread reuses (Codec.decode_view). Raises
    IntegrityError naming the chunk, its pack and (given ``path``) the file it belongs to,
    also for a blob that does not decode or fails authentication."""
    of = f" of {path}" if path else ""
    try:
        decode = codec.decode_view if reuse else codec.decode
        raw = decode(stored, loc.flags, loc.raw_length, chunk_id)
    except IntegrityError as exc:
        raise IntegrityError(f"Chunk {chunk_id[:12]}{of} in pack {loc.pack[:12]} is damaged ({exc.message}); "
                             "run `backupflow verify --read-data`.") from exc
    if len(raw) != loc.raw_length or codec.sealer.content_id(raw) != chunk_id:
        raise IntegrityError(f"Chunk {chunk_id[:12]}{of} in pack {loc.pack[:12]} is damaged; "
                             "run `backupflow verify --read-data`.")
    return raw
