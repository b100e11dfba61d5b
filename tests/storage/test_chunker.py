"""FastCDC chunking: deterministic per secret, different across secrets, bounded sizes, local edits."""

from __future__ import annotations

import hashlib
import io
import random

from storage.objects import Chunker, ChunkerParams

PARAMS = ChunkerParams(seed=12345)
DATA = random.Random(7).randbytes(24 * 1024 * 1024)


def cuts(data: bytes, params: ChunkerParams = PARAMS) -> list[bytes]:
    return [bytes(c) for c in Chunker(params).cut(data)]


def ids(chunks: list[bytes]) -> list[str]:
    return [hashlib.sha256(c).hexdigest() for c in chunks]


def test_boundaries_are_deterministic_for_a_seed_and_cover_the_data():
    a, b = cuts(DATA), cuts(DATA)
    assert ids(a) == ids(b)
    assert b"".join(a) == DATA
    assert len(a) > 10  # a 24 MiB buffer is many chunks at 768 KiB average


def test_boundaries_differ_across_seeds():
    a = cuts(DATA, ChunkerParams(seed=1))
    b = cuts(DATA, ChunkerParams(seed=2))
    assert b"".join(b) == DATA
    # the secret changes where content is cut, so chunk ids do not reveal known content
    assert not set(ids(a)) & set(ids(b))


def test_chunk_sizes_stay_within_min_and_max():
    chunks = cuts(DATA)
    sizes = [len(c) for c in chunks]
    assert all(PARAMS.min_size <= s <= PARAMS.max_size for s in sizes[:-1]), sizes
    assert 0 < sizes[-1] <= PARAMS.max_size
    # zeros have no content to cut on: only the maximum bounds them
    zeros = cuts(bytes(10 * 1024 * 1024))
    assert all(len(c) <= PARAMS.max_size for c in zeros)
    assert len(zeros) >= 3


def test_small_buffer_is_one_chunk():
    assert cuts(b"tiny") == [b"tiny"]
    assert cuts(b"") == [b""]


def test_insertion_in_the_middle_changes_only_nearby_chunks():
    before = ids(cuts(DATA))
    mid = len(DATA) // 2
    edited = DATA[:mid] + b"inserted by an editor" + DATA[mid:]
    after = ids(cuts(edited))
    new = [c for c in after if c not in set(before)]
    assert 1 <= len(new) <= 3, f"{len(new)} of {len(after)} chunks changed for one small insertion"
    # everything before and after the edit is cut exactly as before
    assert after[:3] == before[:3] and after[-3:] == before[-3:]


def test_stream_cuts_like_buffer():
    streamed = [bytes(c) for c in Chunker(PARAMS).cut_stream(io.BytesIO(DATA))]
    assert ids(streamed) == ids(cuts(DATA))


class _Trickle(io.RawIOBase):
    """A file that hands out its bytes in short, uneven reads, as pipes and network mounts do."""

    def __init__(self, data: bytes, seed: int):
        self.data, self.pos, self.rng = data, 0, random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.rng.randint(1, 3 * 1024 * 1024), len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_one_chunker_streams_many_files_with_the_same_cuts_as_whole_buffers():
    chunker = Chunker(PARAMS)  # reused, like a backup thread's, so its window is reused too
    text = b"".join(f"line {i} {random.Random(i).random()}\n".encode() for i in range(400_000))
    for n, data in enumerate([DATA, text, DATA[: 2 * PARAMS.max_size], DATA[:PARAMS.max_size + 1], b"x" * 9_000_000]):
        streamed = [bytes(c) for c in chunker.cut_stream(_Trickle(data, n))]
        assert b"".join(streamed) == data
        assert ids(streamed) == ids(cuts(data)), f"file {n} was cut differently when streamed"
