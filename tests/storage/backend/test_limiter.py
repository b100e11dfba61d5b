"""Bandwidth limits hold within 10 % over a 10-second window, for uploads and downloads at once."""

from __future__ import annotations

import threading
import time

import pytest

from storage.backend import open_backend
from storage.backend.limiter import parse_rate
from storage.errors import InvalidConfig

MiB = 2**20


@pytest.mark.parametrize("text,rate", [
    ("20MiB/s", 20 * MiB), ("500KB/s", 500_000), ("1.5 MiB/s", 1.5 * MiB), ("2M", 2_000_000), ("1GiBps", 2**30),
    (4096, 4096), (None, None), ("unlimited", None), ("0", None),
])
def test_rates_parse(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20 MiB per second", "-5MiB/s", "20XB/s", "10B/s"])
def test_bad_rates_name_the_setting_and_the_form(text):
    with pytest.raises(InvalidConfig) as info:
        open_backend("memory://limit-bad", upload_limit=text)
    assert "upload_limit" in info.value.message and repr(text) in info.value.message


def test_limits_hold_within_10_percent_over_10_seconds(tmp_path):
    """4 uploaders at 2 MiB/s and 4 downloaders at 1 MiB/s on a real local repository."""
    up_rate, down_rate, window = 2 * MiB, 1 * MiB, 10.0
    backend = open_backend(str(tmp_path / "repo"), upload_limit="2MiB/s", download_limit="1MiB/s")
    chunk = 64 * 1024
    source = open_backend(str(tmp_path / "repo"))  # unlimited, to seed objects for the downloaders
    for i in range(8):
        source.save(f"data/seed/{i}", bytes([i]) * (4 * chunk))
    moved = {"up": 0, "down": 0}
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + window

    def upload(w: int) -> None:
        i = 0
        while True:
            backend.save(f"data/up/{w}-{i}", bytes([w]) * chunk)
            if time.monotonic() > deadline:
                return
            with lock:
                moved["up"] += chunk
            i += 1

    def download(w: int) -> None:
        i = 0
        while True:
            data = backend.load(f"data/seed/{(w + i) % 8}", chunk, chunk)
            if time.monotonic() > deadline:
                return
            assert data == bytes([(w + i) % 8]) * chunk
            with lock:
                moved["down"] += chunk
            i += 1

    threads = [threading.Thread(target=upload, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=download, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    up, down = moved["up"] / window, moved["down"] / window
    print(f"limiter: up {up / MiB:.3f} MiB/s, down {down / MiB:.3f} MiB/s")
    assert abs(up - up_rate) / up_rate < 0.10, f"upload {up / MiB:.2f} MiB/s, limit 2"
    assert abs(down - down_rate) / down_rate < 0.10, f"download {down / MiB:.2f} MiB/s, limit 1"
