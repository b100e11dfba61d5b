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
from storage.crypto.sealer import NONCE, OVERHEAD, SALT
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

    def _buffer(self, size: int, which: str = "sealed") -> bytearray:
        """This thread's buffer ``which`` (sealed: for sealing or opening one blob; raw: for a
        decompressed one), of at least ``size`` bytes. A short one is replaced, not grown: a
        view of it may still be alive. Rounded up to 1 MiB, so chunks of varied sizes do not
        replace it over and over."""
        out = getattr(self._local, which, None)
        if out is None or len(out) < size:
            out = bytearray(-(-size // (1 << 20)) << 20)
            setattr(self._local, which, out)
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
        """The chunk in ``stored``, as new bytes (see ``decode_view`` for a reused buffer)."""
        return self._decode(stored, flags, raw_length, chunk_id, False)

    def decode_view(self, stored, flags: int, raw_length: int, chunk_id: str = ""):
        """Like ``decode``, but the chunk may be a view of a buffer that the next call on this
        thread reuses (use it before decoding again): a restore writes each chunk at once, and
        a fresh multi-MiB buffer per chunk is mmapped and page-faulted in anew (storage/allocator.py).
        A writable view ``stored`` is decrypted in place (its bytes are spent)."""
        return self._decode(stored, flags, raw_length, chunk_id, True)

    def _decode(self, stored, flags: int, raw_length: int, chunk_id: str, reuse: bool):
        if bool(flags & FLAG_ENCRYPTED) != self.sealer.encrypted:
            # Neither is written by backupflow: in an encrypted repository a plaintext blob
            # would be one that someone without the key put there.
            state = "encrypted" if flags & FLAG_ENCRYPTED else "not encrypted"
            raise IntegrityError(f"A blob is {state}, unlike its repository.")
        if flags & FLAG_ENCRYPTED:
            kind = b"blob " + chunk_id.encode()
            if not flags & FLAG_ZSTD and not reuse:
                return self.sealer.open(kind, stored)  # opened into new bytes: no copy after
            stored = self.sealer.open(kind, stored, self._open_buffer(stored, reuse))
        if flags & FLAG_ZSTD:
            try:
                if reuse:
                    return self._decompress_into(stored, raw_length)
                return self._dctx().decompress(stored, max_output_size=raw_length)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"A compressed blob is damaged ({exc}).") from exc
        return stored if reuse else bytes(stored)

    def _open_buffer(self, stored, reuse: bool):
        """Where to open ``stored``: in place when the caller lent a writable view of its own
        buffer (decode_view; AES-GCM decrypts in place, the plaintext over the ciphertext it
        was read from), else this thread's buffer."""
        if reuse and isinstance(stored, memoryview) and not stored.readonly and len(stored) >= OVERHEAD:
            return stored[SALT + NONCE:]
        return self._buffer(max(0, len(stored) - OVERHEAD))

    def _decompress_into(self, stored, raw_length: int) -> memoryview:
        """Decompress into this thread's raw buffer (python-zstandard has no decompress-into,
        but its stream reader's ``readinto`` writes straight into the buffer given). A frame
        holding more or fewer than ``raw_length`` bytes is damaged."""
        view = memoryview(self._buffer(raw_length + 1, "raw"))[:raw_length + 1]
        got = 0
        with self._dctx().stream_reader(stored) as reader:
            while got <= raw_length and (n := reader.readinto(view[got:])):
                got += n
        if got != raw_length:  # a cut frame ends early without a word from the reader
            more = "more" if got > raw_length else "fewer"
            raise zstandard.ZstdError(f"it decompresses to {more} bytes than its length")
        return view[:got]

    # Small JSON documents (headers, index, manifests) use the same codec at a fixed level,
    # then the sealer, bound to the document's ``kind`` (b"index", b"tree", ...). Any level
    # reads back the same way.
    @staticmethod
    def pack_doc(data: bytes, sealer: Sealer = PLAIN, kind: bytes = b"", level: int = 3) -> bytes:
        packed = zstandard.ZstdCompressor(level=level).compress(data)
        return sealer.seal(kind, packed) if sealer.encrypted else packed

    @staticmethod
    def unpack_doc(data: bytes, sealer: Sealer = PLAIN, kind: bytes = b"") -> bytes:
        if sealer.encrypted:
            data = sealer.open(kind, data)
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"A compressed metadata object is damaged ({exc}).") from exc
