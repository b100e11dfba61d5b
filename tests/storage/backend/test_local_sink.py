"""Local disk: streamed writes (packs) are invisible until committed, write-once, leave nothing
behind; and all of it holds on a filesystem without hard links."""

from __future__ import annotations

import errno
import hashlib
import os
import random

import pytest

from storage import Repository
from storage.backend import open_backend, sink_for
from storage.errors import AlreadyExists
from storage.objects import Codec, PackWriter, parse_pack
from tests.treegen import assert_same_tree, make_tree


def _files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_sink_object_appears_whole_on_commit_and_only_then(tmp_path):
    backend = open_backend(str(tmp_path))  # the full wrapper stack, as a repository opens it
    open_sink = sink_for(backend)
    assert open_sink is not None
    sink = open_sink()
    sink.write(b"first part, ")
    sink.write(memoryview(bytearray(b"second part")))
    assert list(backend.list("data/")) == []  # the temporary file is not an object
    sink.commit("data/ab/object")
    assert backend.load("data/ab/object") == b"first part, second part"
    assert _files(tmp_path) == ["data/ab/object"]


def _refuse_link(src, dst, *args, **kwargs):
    """link(2) as on a filesystem without hard links (FAT, exFAT, some SMB mounts). No such
    filesystem can be mounted on the test machines, so this one failure is forced."""
    raise OSError(errno.EPERM, "Operation not permitted", src, None, dst)


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_save_and_sink_are_write_once(hard_links, monkeypatch, tmp_path):
    if not hard_links:
        monkeypatch.setattr(os, "link", _refuse_link)
    backend = open_backend(str(tmp_path))
    backend.save("data/ab/object", b"same")
    backend.save("data/ab/object", b"same")  # identical content: a retried upload is harmless
    with pytest.raises(AlreadyExists):
        backend.save("data/ab/object", b"different")
    sink = sink_for(backend)()
    sink.write(b"same")
    sink.commit("data/ab/object")
    sink = sink_for(backend)()
    sink.write(b"different")
    with pytest.raises(AlreadyExists):
        sink.commit("data/ab/object")
    assert backend.load("data/ab/object") == b"same"
    assert _files(tmp_path) == ["data/ab/object"]


def test_aborted_sink_leaves_nothing(tmp_path):
    backend = open_backend(str(tmp_path))
    sink = sink_for(backend)()
    sink.write(b"x" * 100_000)
    sink.abort()
    assert _files(tmp_path) == []


def test_memory_backend_takes_whole_objects_only():
    assert sink_for(open_backend("memory://sinkless")) is None


def test_streamed_pack_is_the_same_object_as_a_buffered_one(tmp_path):
    backend = open_backend(str(tmp_path))
    rng = random.Random(7)
    codec = Codec(3)
    streamed, buffered = PackWriter("run", sink_for(backend)()), PackWriter("run")
    window = bytearray(10_000)
    for i in range(30):
        raw = rng.randbytes(rng.randint(1, 5000)) if i % 2 else (b"text %d " % i) * rng.randint(1, 900)
        window[:len(raw)] = raw  # a reused buffer, as the chunker's window is
        stored, flags = codec.encode(memoryview(window)[:len(raw)])
        cid = hashlib.sha256(raw).hexdigest()
        streamed.add(cid, stored, len(raw), flags)
        buffered.add(cid, stored, len(raw), flags)
    pack_id, none, entries = streamed.finish()
    expected_id, data, expected_entries = buffered.finish()
    assert none is None and (pack_id, entries) == (expected_id, expected_entries)
    stored = backend.load(f"data/{pack_id[:2]}/{pack_id}")
    assert stored == data and parse_pack(stored, pack_id) == entries


def test_a_repository_on_a_filesystem_without_hard_links_backs_up_and_verifies(monkeypatch, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=4)  # before links fail: the tree has hard links of its own
    with monkeypatch.context() as m:
        m.setattr(os, "link", _refuse_link)
        repo = Repository.init(str(tmp_path / "repo"))
        first = repo.backup(str(src))
        assert repo.backup(str(src)).stats["bytes_added"] < first.stats["bytes_added"]
        assert Repository.open(str(tmp_path / "repo")).verify(read_data=True).ok
        assert not [p for p in (tmp_path / "repo").rglob(".tmp-*")], "temporary files left behind"
    Repository.open(str(tmp_path / "repo")).restore("latest", str(tmp_path / "out"))  # to a normal disk
    assert_same_tree(src, tmp_path / "out")


def test_every_object_is_on_disk_before_it_has_a_name_and_its_name_after(monkeypatch, tmp_path):
    """What a power cut needs (restic and borg do the same): a file's data is flushed before it
    is linked into place, and the folder holding the new name is flushed after. A power cut
    cannot be staged here, so the real calls are watched (and still made), not replaced."""
    src = tmp_path / "src"
    make_tree(src, seed=5)
    events: list[tuple] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        events.append(("sync", os.fstat(fd).st_ino))
        return real_fsync(fd)

    def link(a, b, *args, **kwargs):
        events.append(("link", os.stat(a).st_ino, os.stat(os.path.dirname(b)).st_ino))
        return real_link(a, b, *args, **kwargs)

    repo = Repository.init(str(tmp_path / "repo"))
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        m.setattr(os, "link", link)
        repo.backup(str(src))
    links = [(i, e) for i, e in enumerate(events) if e[0] == "link"]
    assert len(links) >= 5  # packs, index, tree, snapshot manifest, lock
    for i, (_, file_ino, folder_ino) in links:
        assert ("sync", file_ino) in events[:i], "an object was named before its data was flushed"
        assert ("sync", folder_ino) in events[i + 1:], "a folder was not flushed after a new name"
