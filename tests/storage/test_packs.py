"""Pack objects: self-describing round trip, names are content hashes, damage raises IntegrityError."""

from __future__ import annotations

import hashlib
import random

import pytest

from storage.backend import MemoryBackend
from storage.errors import IntegrityError
from storage.objects import Codec, PackWriter, pack_name, parse_pack


def _pack(n: int = 20):
    rng = random.Random(n)
    codec = Codec(3)
    writer = PackWriter()
    chunks = {}
    for i in range(n):
        raw = rng.randbytes(rng.randint(1, 5000)) if i % 2 else (b"text %d " % i) * rng.randint(1, 900)
        cid = hashlib.sha256(raw).hexdigest()
        stored, flags = codec.encode(raw)
        writer.add(cid, stored, len(raw), flags)
        chunks[cid] = raw
    pack_id, data, entries = writer.finish()
    return pack_id, data, entries, chunks


def test_round_trip_through_a_backend():
    pack_id, data, entries, chunks = _pack()
    assert pack_id == hashlib.sha256(data).hexdigest()
    assert pack_name(pack_id) == f"data/{pack_id[:2]}/{pack_id}"
    backend = MemoryBackend()
    backend.save(pack_name(pack_id), data)
    loaded = backend.load(pack_name(pack_id))
    parsed = parse_pack(loaded, pack_id)
    assert parsed == entries
    codec = Codec(3)
    for cid, off, length, raw_len, flags in parsed:
        # ranged reads, as restore does them
        blob = backend.load(pack_name(pack_id), off, length)
        assert codec.decode(blob, flags, raw_len) == chunks[cid]
    assert {e[0] for e in parsed} == set(chunks)


def test_flipped_byte_raises_integrity_error():
    pack_id, data, _, _ = _pack()
    bad = bytearray(data)
    bad[len(bad) // 3] ^= 0x01
    with pytest.raises(IntegrityError, match=pack_id[:12]):
        parse_pack(bytes(bad), pack_id)


def test_damaged_trailer_or_header_raises_integrity_error_without_expected_id():
    _, data, _, _ = _pack()
    with pytest.raises(IntegrityError):
        parse_pack(data[:-1] + b"X")           # magic damaged
    with pytest.raises(IntegrityError):
        parse_pack(data[:-12] + b"\xff\xff\xff\x7f" + data[-8:])  # header length out of range
    header_start = len(data) - 12 - int.from_bytes(data[-12:-8], "little")
    bad = bytearray(data)
    bad[header_start + 2] ^= 0xFF
    with pytest.raises(IntegrityError):
        parse_pack(bytes(bad))
    with pytest.raises(IntegrityError):
        parse_pack(b"short")


def test_empty_writer_has_no_blobs():
    writer = PackWriter()
    assert writer.count == 0 and len(writer) == 0
    pack_id, data, entries = writer.finish()
    assert entries == [] and parse_pack(data, pack_id) == []
