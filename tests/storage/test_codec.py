"""Blob encoding: zstd round trip, incompressible data stored raw, level 0 stores raw, damage detected."""

from __future__ import annotations

import random

import pytest

from storage.crypto import PLAIN, MasterKey
from storage.errors import IntegrityError
from storage.objects import Codec
from storage.objects.codec import FLAG_ENCRYPTED, FLAG_ZSTD

TEXT = b"def backup(source, repo):\n    return restore(repo, source)\n" * 2000
NOISE = random.Random(3).randbytes(200_000)


def test_compressible_round_trip_is_smaller():
    c = Codec(3)
    stored, flags = c.encode(TEXT)
    assert flags == FLAG_ZSTD
    assert len(stored) < len(TEXT) / 10
    assert c.decode(stored, flags, len(TEXT)) == TEXT


def test_incompressible_is_stored_raw():
    c = Codec(19)
    stored, flags = c.encode(NOISE)
    assert flags == 0
    assert stored == NOISE
    assert c.decode(stored, flags, len(NOISE)) == NOISE


def test_level_zero_stores_raw():
    c = Codec(0)
    stored, flags = c.encode(TEXT)
    assert (stored, flags) == (TEXT, 0)
    assert c.decode(stored, flags, len(TEXT)) == TEXT


def test_memoryview_input_round_trips():
    c = Codec(3)
    stored, flags = c.encode(memoryview(TEXT)[100:5000])
    assert c.decode(stored, flags, 4900) == TEXT[100:5000]


def test_damaged_compressed_blob_raises_integrity_error():
    c = Codec(3)
    stored, flags = c.encode(TEXT)
    bad = bytearray(stored)
    bad[len(bad) // 2] ^= 0xFF
    bad = bytes(bad[: len(bad) // 2])  # truncated and flipped
    with pytest.raises(IntegrityError):
        c.decode(bad, flags, len(TEXT))


def test_encrypted_flag_is_refused_clearly():
    with pytest.raises(IntegrityError, match="encrypted"):
        Codec(3).decode(b"xx", FLAG_ENCRYPTED, 2)


def test_metadata_documents_round_trip_and_detect_damage():
    doc = b'{"v": 1, "packs": {}}' * 100
    packed = Codec.pack_doc(doc)
    assert Codec.unpack_doc(packed) == doc
    with pytest.raises(IntegrityError):
        Codec.unpack_doc(b"not zstd at all")


def test_an_encrypted_codec_round_trips_blobs_of_growing_size_and_refuses_another_chunks():
    c = Codec(3, MasterKey.new().sealer())
    held = []
    for size in (10, 300_000, 5_000_000, 100):  # the thread's buffer is replaced while views of it live
        raw = random.Random(size).randbytes(size // 2) + bytes(size - size // 2)
        stored, flags = c.encode(raw, "a" * 64)
        held.append(stored)
        stored = bytes(stored)
        assert flags & FLAG_ENCRYPTED and raw[:50] not in stored
        assert c.decode(stored, flags, len(raw), "a" * 64) == raw
        with pytest.raises(IntegrityError):
            c.decode(stored, flags, len(raw), "b" * 64)  # a blob cannot stand in for another chunk


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("raw", [TEXT, NOISE], ids=["compressed", "stored-raw"])
def test_decode_view_gives_what_decode_gives_from_a_lent_buffer(encrypted, raw):
    c = Codec(3, MasterKey.new().sealer() if encrypted else PLAIN)
    stored, flags = c.encode(raw, "a" * 64)
    stored = bytes(stored)
    lent = bytearray(b"h" * 7 + stored + b"t" * 5)  # a blob inside a range read into a reused buffer
    view = c.decode_view(memoryview(lent)[7:7 + len(stored)], flags, len(raw), "a" * 64)
    assert bytes(view) == raw == c.decode(stored, flags, len(raw), "a" * 64)
    assert lent[:7] == b"h" * 7 and lent[-5:] == b"t" * 5  # opened in place, inside the blob's bytes
    again = c.decode_view(stored, flags, len(raw), "a" * 64)  # read-only input: the thread's buffers
    assert bytes(again) == raw


def test_decode_view_refuses_damage_and_a_frame_longer_than_its_blob():
    c = Codec(3)
    stored, flags = c.encode(TEXT)
    with pytest.raises(IntegrityError):
        c.decode_view(stored[: len(stored) // 2], flags, len(TEXT))
    with pytest.raises(IntegrityError):
        c.decode_view(stored, flags, len(TEXT) - 1)  # the index says shorter than the frame holds
    sealed = Codec(3, MasterKey.new().sealer())
    stored, flags = sealed.encode(TEXT, "a" * 64)
    bad = bytearray(stored)
    bad[40] ^= 1
    with pytest.raises(IntegrityError):
        sealed.decode_view(memoryview(bad), flags, len(TEXT), "a" * 64)
