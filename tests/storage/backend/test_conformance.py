"""One conformance suite for the backend seam, run against every backend (the contracts in
storage/backend/base.py).

memory and local need nothing; S3, Azure and GCS run against moto_server, Azurite and
fake-gcs-server started by tests/cloud_servers.py. Each test gets a fresh, empty repository
opened through ``open_backend`` with retry off, so it sees exactly what the backend does.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage.backend import load_into
from storage.errors import AlreadyExists, NotFound

# `backend`: every backend kind, from tests/storage/conftest.py


def test_exclusive_save_refuses_other_content_and_accepts_identical(backend):
    backend.save("config", b"first")
    backend.save("config", b"first")  # a retried upload of the same bytes is harmless
    with pytest.raises(AlreadyExists):
        backend.save("config", b"second")
    with pytest.raises(AlreadyExists):
        backend.save("config", b"firs")  # same prefix, other length
    assert backend.load("config") == b"first"
    backend.save("config", b"replaced", exclusive=False)
    assert backend.load("config") == b"replaced"


def test_ranged_reads(backend):
    data = bytes(range(256)) * 40
    backend.save("data/ab/pack", data)
    assert backend.load("data/ab/pack", 0, 10) == data[:10]
    assert backend.load("data/ab/pack", 1000, 256) == data[1000:1256]
    assert backend.load("data/ab/pack", 10000) == data[10000:]
    assert backend.load("data/ab/pack", len(data) - 5, 5) == data[-5:]
    assert backend.load("data/ab/pack") == data
    assert backend.stat("data/ab/pack").size == len(data)


def test_missing_object_raises_not_found(backend):
    backend.save("index/present", b"x")
    for call in (lambda: backend.load("index/absent"), lambda: backend.load("index/absent", 2, 3),
                 lambda: backend.stat("index/absent"), lambda: backend.remove("index/absent"),
                 lambda: backend.stat("index")):  # a "folder" is not an object
        with pytest.raises(NotFound):
            call()
    backend.remove("index/present")
    with pytest.raises(NotFound):
        backend.load("index/present")
    assert [i.name for i in backend.list("index/")] == []


def test_listing_more_than_1000_objects_yields_each_once(backend):
    names = [f"data/{i % 16:02x}/{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(1100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: backend.save(n, n.encode()), names))
    backend.save("snapshots/one", b"s")
    backend.save("datafile", b"not under data/")

    listed = [i.name for i in backend.list("data/")]
    assert len(listed) == len(set(listed)) == 1100
    assert set(listed) == set(names)
    assert all(i.size == len(i.name) for i in backend.list("data/0"))
    assert {i.name for i in backend.list("data/0a/")} == {n for n in names if n.startswith("data/0a/")}
    everything = [i.name for i in backend.list()]
    assert len(everything) == len(set(everything)) == 1102


def test_concurrent_writers_all_land(backend):
    shared = b"the same pack from every writer"
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(8):
                backend.save(f"data/w{w:02d}/{i}", f"{w}:{i}".encode() * 100)
                backend.save("data/shared", shared)  # content-addressed: everybody writes the same bytes
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(backend.list("data/w"))) == 12 * 8
    assert backend.load("data/w07/5") == b"7:5" * 100
    assert backend.load("data/shared") == shared


def test_object_over_100_mib_round_trips(backend):
    size = 101 * 2**20 + 123  # over 100 MiB and not a multiple of any part size
    data = os.urandom(size)
    backend.save("data/big/pack", data)
    assert backend.stat("data/big/pack").size == size
    back = backend.load("data/big/pack")
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    del back
    tail = 50 * 2**20 - 7  # a range across an upload-part boundary
    assert backend.load("data/big/pack", tail, 4096) == data[tail:tail + 4096]
    backend.save("data/big/pack", data)  # identical re-save of a big object is accepted


def test_reads_into_a_callers_buffer_stop_at_the_end_and_refuse_a_missing_object(backend):
    data = bytes(range(256)) * 40
    backend.save("data/ab/pack", data)
    buf = bytearray(b"x" * 600)
    assert load_into(backend, "data/ab/pack", 1000, memoryview(buf)[:256]) == 256
    assert buf[:256] == data[1000:1256] and buf[256:] == b"x" * 344
    assert load_into(backend, "data/ab/pack", len(data) - 100, buf) == 100  # short at the end
    assert buf[:100] == data[-100:]
    with pytest.raises(NotFound):
        load_into(backend, "data/ab/absent", 0, buf)
