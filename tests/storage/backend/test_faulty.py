"""20 % transient failures under the retry layer: every object still round-trips exactly."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage.backend import open_backend
from storage.backend.faulty import FaultyBackend
from storage.backend.memory import MemoryBackend
from storage.backend.retry import RetryBackend
from storage.errors import TransientError


def _objects(n: int) -> dict[str, bytes]:
    return {f"data/{i % 7}/{hashlib.sha256(str(i).encode()).hexdigest()}": str(i).encode() * (i + 1) for i in range(n)}


def test_faults_are_injected_and_transient():
    faulty = FaultyBackend(MemoryBackend(), rate=0.5, seed=1)
    errors = 0
    for i in range(100):
        try:
            faulty.save(f"x/{i}", b"data")
        except TransientError:
            errors += 1
    assert 30 < errors < 70 and faulty.injected == errors


def test_everything_round_trips_through_20_percent_faults_with_retry():
    inner = MemoryBackend()
    faulty = FaultyBackend(inner, rate=0.2, seed=42)
    backend = RetryBackend(faulty, max_seconds=30, base_delay=0.001, max_delay=0.01)
    objects = _objects(300)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: backend.save(*kv), objects.items()))
        list(pool.map(lambda kv: backend.save(*kv), list(objects.items())[:50]))  # re-saves are harmless
    assert faulty.injected > 60
    listed = [i.name for i in backend.list("data/")]
    assert sorted(listed) == sorted(objects)
    for name, data in objects.items():
        assert backend.load(name) == data
        assert backend.load(name, 1, 2) == data[1:3]
    assert {n: inner.load(n) for n in objects} == objects  # what is stored is exactly what was sent


def test_factory_enables_faults_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_FAULT_RATE", "0.2")
    monkeypatch.setenv("BACKUPFLOW_FAULT_SEED", "3")
    backend = open_backend(str(tmp_path / "repo"), retry_seconds=60)
    objects = _objects(15)
    for name, data in objects.items():
        backend.save(name, data)
    assert {n: backend.load(n) for n in objects} == objects
    raw = open_backend(str(tmp_path / "repo"), retry_seconds=0)
    assert isinstance(raw, FaultyBackend) and raw.rate == 0.2
    monkeypatch.delenv("BACKUPFLOW_FAULT_RATE")
    assert not isinstance(open_backend(str(tmp_path / "repo"), retry_seconds=0), FaultyBackend)


def test_fault_rate_must_be_a_fraction():
    with pytest.raises(Exception) as info:
        open_backend("memory://faults", fault_rate=1.5)
    assert "fault rate" in str(info.value)
