"""Blob encoding: zstd at the repository's level, or raw when compression does not pay.

Flags (one byte in each index entry, so the format can grow without a new version):
bit 0 = zstd-compressed; bit 1 = encrypted (sealed by the repository's sealer after
compression, authenticated with the chunk id: storage/crypto). zstd contexts are not
thread-safe, so each thread keeps its own.
"""

from __future__ import annotations

import threading

import zstandard

from storage.crypto import PLAIN, Sealer
from storage.crypto.sealer import OVERHEAD
from storage.errors import IntegrityError

SAMPLE = 32 * 1024
FLAG_ZSTD = 1
FLAG_ENCRYPTED = 2


class Codec:
    def __init__(self, level: int, sealer: Sealer = PLAIN):
        self.level = level
        self.sealer = sealer
        self._local = threading.local()

    def _cctx(self, size: int) -> zstandard.ZstdCompressor:
        # One context per size class: zstd sizes its tables to the input and frees a workspace
        # that stays 3x too large for 128 calls, so one context fed small files and large
        # chunks in turn reallocated (and zeroed) its tables over and over: an eighth of a
        # first backup's page faults.
        cls = 0 if size <= 16 * 1024 else 1 if size <= 256 * 1024 else 2
        cs = getattr(self._local, "c", None)
        if cs is None:
            cs = self._local.c = [None, None, None]
        c = cs[cls]
        if c is None:
            c = cs[cls] = zstandard.ZstdCompressor(level=self.level)
        return c

    def _probe(self) -> zstandard.ZstdCompressor:
        # The sample test runs holding the GIL (15 % of the GIL-held time of a first backup at
        # level 3), so it uses zstd's fastest level: it only has to tell noise from data.
        p = getattr(self._local, "p", None)
        if p is None:
            p = self._local.p = zstandard.ZstdCompressor(level=1)
        return p

    def _dctx(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def encode(self, data, chunk_id: str = "") -> tuple[bytes, int]:
        """(stored bytes, flags): compressed, then sealed in an encrypted repository (bound to
        ``chunk_id``). The bytes may be a view of a buffer the next call on this thread
        reuses: hand them on (PackWriter.add copies them) before encoding again."""
        stored, flags = self._compress(data)
        if self.sealer.encrypted:
            # Sealed into this thread's buffer: a fresh one per large blob costs a page fault
            # per 4 KiB (large buffers are mmapped, storage/allocator.py). The pack copies it.
            out = self._buffer(len(stored) + OVERHEAD)
            return self.sealer.seal(b"blob " + chunk_id.encode(), stored, out), flags | FLAG_ENCRYPTED
        return stored, flags

    def _buffer(self, size: int) -> bytearray:
        """This thread's buffer for sealing or opening one blob, of at least ``size`` bytes.
        A short one is replaced, not grown: a view of it may still be alive."""
        out = getattr(self._local, "sealed", None)
        if out is None or len(out) < size:
            out = self._local.sealed = bytearray(size)
        return out

    def _compress(self, data) -> tuple[bytes, int]:
        """(stored bytes, flags). Stores raw when zstd saves under 3 % (random data, media);
        raw data is returned as given, not copied (the pack copies it once).

        A large chunk is judged by a 32 KiB sample first: compressing incompressible data in
        full cost 30 % of a first backup's CPU on the benchmark workspace."""
        if self.level <= 0:
            return data, 0
        if len(data) > 8 * SAMPLE:
            mid = len(data) // 2
            sample = data[mid:mid + SAMPLE]
            if len(self._probe().compress(sample)) > SAMPLE * 0.98:
                return data, 0
        packed = self._cctx(len(data)).compress(data)
        if len(packed) > len(data) * 0.97:
            return data, 0
        return packed, FLAG_ZSTD

    def decode(self, stored, flags: int, raw_length: int, chunk_id: str = "") -> bytes:
        if bool(flags & FLAG_ENCRYPTED) != self.sealer.encrypted:
            # Neither is written by backupflow: in an encrypted repository a plaintext blob
            # would be one that someone without the key put there.
            state = "encrypted" if flags & FLAG_ENCRYPTED else "not encrypted"
            raise IntegrityError(f"A blob is {state}, unlike its repository.")
        if flags & FLAG_ENCRYPTED:
            kind = b"blob " + chunk_id.encode()
            if not flags & FLAG_ZSTD:
                return self.sealer.open(kind, stored)  # opened into new bytes: no copy after
            out = self._buffer(max(0, len(stored) - OVERHEAD))
            stored = self.sealer.open(kind, stored, out)
        if flags & FLAG_ZSTD:
            try:
                return self._dctx().decompress(stored, max_output_size=raw_length)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"A compressed blob is damaged ({exc}).") from exc
        return bytes(stored)

    # Small JSON documents (headers, index, manifests) use the same codec at a fixed level,
    # then the sealer, bound to the document's ``kind`` (b"index", b"tree", ...).
    @staticmethod
    def pack_doc(data: bytes, sealer: Sealer = PLAIN, kind: bytes = b"") -> bytes:
        packed = zstandard.ZstdCompressor(level=3).compress(data)
        return sealer.seal(kind, packed) if sealer.encrypted else packed

    @staticmethod
    def unpack_doc(data: bytes, sealer: Sealer = PLAIN, kind: bytes = b"") -> bytes:
        if sealer.encrypted:
            data = sealer.open(kind, data)
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"A compressed metadata object is damaged ({exc}).") from exc
