"""storage.objects: chunks, packs and the index — the content-addressed layer.

Vocabulary:
- *chunk*: a piece of file content cut by FastCDC; its *id* is the hex sha256 of its bytes
  (HMAC-SHA-256 under the id key in an encrypted repository: storage/crypto).
- *blob*: a chunk as stored: zstd-compressed (or raw when compression does not pay), then
  sealed in an encrypted repository.
- *pack*: a write-once object holding many blobs followed by a header that lists them, so a
  pack can be checked and re-indexed on its own. Its name is the sha256 of its bytes.
- *index*: objects that map chunk id -> (pack, offset, length, raw length, flags), written
  after the packs they describe.

Invariants (stated in docs/FORMAT.md): the write order packs -> index -> tree -> manifest
("write order and concurrency"), and objects named by the hash of their content (the table at
its top). This package keeps the first two links of that order.
"""

from storage.objects.blob import EMPTY_SHA256, read_blob
from storage.objects.chunker import Chunker, ChunkerParams
from storage.objects.codec import Codec
from storage.objects.index import BlobLocation, Index, IndexWriter
from storage.objects.packs import PackWriter, load_pack_header, pack_name, parse_pack

__all__ = [
    "EMPTY_SHA256", "BlobLocation", "Chunker", "ChunkerParams", "Codec", "Index", "IndexWriter",
    "PackWriter", "load_pack_header", "pack_name", "parse_pack", "read_blob",
]
