"""Per-file version history in the repository (storage/versions/): records, index, content, diff."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from storage import Repository
from storage.backend import open_backend
from storage.errors import InvalidInput, NotFound
from storage.layout import DATA
from storage.versions.records import FILES


@pytest.fixture
def repo():
    r = Repository.init(f"memory://versions-{uuid.uuid4().hex}")
    yield r
    r.close()


def test_versions_link_parents_and_keep_author_message_and_tags(repo):
    store = repo.versions()
    v1 = store.create_version("/workspace/main.py", b"print('Hello')\n", author="ann", message="Initial")
    v2 = store.create_version("/workspace/main.py", b"print('Hello, World!')\n", author="bob", message="Greet all")
    store.tag_version("/workspace/main.py", v1.version_id, "v1.0")
    versions = store.get_versions("/workspace/main.py")
    assert [v.version_id for v in versions] == [v1.version_id, v2.version_id]
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].parent_id is None and versions[1].parent_id == v1.version_id
    assert (versions[1].author, versions[1].message) == ("bob", "Greet all")
    assert versions[0].tags == ["v1.0"] and versions[1].tags == []
    assert store.get_version("/workspace/main.py", "v1.0").version_id == v1.version_id
    assert store.get_version("/workspace/main.py", "2").version_id == v2.version_id
    assert store.get_latest_version("/workspace/main.py").version_id == v2.version_id
    assert store.get_content(versions[1]) == b"print('Hello, World!')\n"
    assert versions[1].content_hash == hashlib.sha256(b"print('Hello, World!')\n").hexdigest()


def test_a_tag_moves_and_bad_references_name_what_to_fix(repo):
    store = repo.versions()
    v1 = store.create_version("a.txt", b"one")
    v2 = store.create_version("a.txt", b"two")
    store.tag_version("a.txt", v1.version_id, "stable")
    store.tag_version("a.txt", v2.version_id, "stable")
    assert store.get_version("a.txt", "stable").version_id == v2.version_id
    with pytest.raises(NotFound, match="a.txt has no version 'nope'"):
        store.get_version("a.txt", "nope")
    with pytest.raises(NotFound):
        store.get_version("b.txt", v1.version_id)  # an id of another file
    with pytest.raises(InvalidInput, match="cannot be a tag"):
        store.tag_version("a.txt", v1.version_id, "7")
    with pytest.raises(InvalidInput, match="must be bytes"):
        store.create_version("a.txt", "text")  # type: ignore[arg-type]


def test_identical_content_is_stored_once_and_large_content_round_trips(repo):
    store = repo.versions()
    big = os.urandom(3 * 1024 * 1024)
    a = store.create_version("/file1.bin", big)
    packs_after_first = {o.name for o in repo.backend.list(DATA)}
    b = store.create_version("/file2.bin", big)
    assert a.content_hash == b.content_hash == hashlib.sha256(big).hexdigest()
    assert {o.name for o in repo.backend.list(DATA)} == packs_after_first  # nothing new stored
    assert store.get_content(b) == big
    empty = store.create_version("/empty", b"")
    assert store.get_content(empty) == b""
    stats = store.stats()
    assert (stats["total_files"], stats["total_versions"], stats["total_objects"]) == (3, 3, 2)


def test_content_a_backup_holds_costs_nothing_and_prune_keeps_it(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(500_000)
    (src / "f.bin").write_bytes(data)
    snap = repo.backup(str(src)).snapshot_id
    packs = {o.name for o in repo.backend.list(DATA)}
    store = repo.versions()
    v = store.create_version("/f.bin", data)
    assert {o.name for o in repo.backend.list(DATA)} == packs
    repo.forget(repo.plan_forget([snap]))
    report = repo.prune()
    assert report.packs_deleted == 0  # the pack the version uses stays though its snapshot is gone
    repo.refresh()
    assert repo.versions().get_content(v) == data


def test_diff_is_unified_for_text_and_one_line_for_binary(repo):
    store = repo.versions()
    a = store.create_version("/app.py", b"a = 1\nb = 2\n")
    b = store.create_version("/app.py", b"a = 1\nb = 3\n")
    diff = store.diff(a, b)
    assert f"--- /app.py@{a.version_id}" in diff and f"+++ /app.py@{b.version_id}" in diff
    assert "-b = 2\n+b = 3\n" in diff
    x = store.create_version("/img.png", b"\x89PNG\0\x01")
    y = store.create_version("/img.png", b"\x89PNG\0\x02\x03")
    line = store.diff(x, y)
    assert line.startswith("Binary contents differ") and line.count("\n") == 1
    assert store.diff(a, a) == ""


def test_restore_writes_a_version_whole(repo, tmp_path):
    store = repo.versions()
    v = store.create_version("/doc.txt", b"first\n")
    store.create_version("/doc.txt", b"second\n")
    target = tmp_path / "out" / "doc.txt"
    store.restore_to(v, str(target))
    assert target.read_bytes() == b"first\n"
    assert [p.name for p in target.parent.iterdir()] == ["doc.txt"]  # no temporary left


class _Counting:
    """Counts the objects read through a backend (to show what one listing reads)."""

    def __init__(self, inner):
        self.inner, self.loads = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def load(self, name, offset=0, length=None):
        self.loads += 1
        return self.inner.load(name, offset, length)


def test_listing_one_file_reads_only_its_own_records_among_100000_versions():
    backend = open_backend(f"memory://versions-{uuid.uuid4().hex}")
    repo = Repository.init(backend.url, backend=backend)
    store = repo.versions()
    for f in range(100):
        store.create_versions(f"/bulk/{f}.txt", (b"x%d" % (i % 7) for i in range(1000)), author="import")
    assert sum(1 for _ in backend.list(FILES)) == 100_000
    counting = _Counting(backend)
    reader = Repository(counting, repo.config, backend.url).versions()
    versions = reader.get_versions("/bulk/50.txt")
    assert [v.number for v in versions] == list(range(1, 1001))
    assert all(v.parent_id == p.version_id for p, v in zip(versions, versions[1:], strict=False))
    assert counting.loads == 1000  # its own records, nothing else
    counting.loads = 0
    assert reader.get_latest_version("/bulk/50.txt").number == 1000
    assert counting.loads == 1


def test_versions_and_verify_get_along(tmp_path):
    repo = Repository.init(str(tmp_path / "repo"))
    repo.versions().create_version("/a.txt", b"hello\n" * 1000)
    report = repo.verify(read_data=True)
    assert report.ok, report.problems


def test_versions_in_an_encrypted_repository_reveal_no_path_author_or_content(tmp_path):
    url = str(tmp_path / "enc")
    with Repository.init(url, password="correct horse battery staple") as repo:
        store = repo.versions()
        v = store.create_version("/secret/plans.txt", b"launch at dawn\n" * 50, author="mallory-watcher",
                                 message="the plan")
        store.tag_version("/secret/plans.txt", v.version_id, "final")
        assert v.content_hash == hashlib.sha256(b"launch at dawn\n" * 50).hexdigest()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "enc").rglob("*") if p.is_file())
    for secret in (b"plans.txt", b"mallory-watcher", b"launch at dawn", b"final",
                   hashlib.sha256(b"/secret/plans.txt").hexdigest().encode(), v.content_hash.encode()):
        assert secret not in stored
    with Repository.open(url, password="correct horse battery staple") as repo:
        store = repo.versions()
        again = store.get_version("/secret/plans.txt", "final")
        assert (again.author, again.message) == ("mallory-watcher", "the plan")
        assert store.get_content(again) == b"launch at dawn\n" * 50
        assert repo.verify(read_data=True).ok


def test_a_backup_never_adopts_version_packs_so_chains_stay_apart(repo, tmp_path):
    data = os.urandom(300_000)
    v = repo.versions().create_version("/f.bin", data)
    version_pack_names = {o.name.rsplit("/", 1)[-1] for o in repo.backend.list(DATA)}
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(data)
    repo.refresh()
    snap = repo.backup(str(src)).snapshot_id
    assert not version_pack_names & set(repo.snapshot(snap).packs)  # its chain holds its own copy
    repo.forget(repo.plan_forget([snap]))
    assert repo.prune().packs_deleted == 1  # the backup's pack goes, the version's stays
    repo.refresh()
    assert repo.versions().get_content(v) == data


def test_copy_history_gives_a_restored_file_the_versions_its_original_had_then(repo):
    store = repo.versions()
    one = store.create_version("/work/a.txt", b"one", author="ann", message="first")
    store.tag_version("/work/a.txt", one.version_id, "v1")
    store.create_version("/work/a.txt", b"two", author="bob", message="second")
    store.create_version("/work/a.txt", b"three", message="after the snapshot")
    store.create_version("/new/b.txt", b"own history")
    pairs = [("/work/a.txt", "/new/a.txt"), ("/work/none.txt", "/new/none.txt"), ("/work/a.txt", "/new/b.txt")]
    assert store.copy_history(pairs, until=store.get_version("/work/a.txt", "2").timestamp) == 2
    copied = store.get_versions("/new/a.txt")
    assert [(v.number, v.author, v.message, v.tags) for v in copied] == [(1, "ann", "first", ["v1"]),
                                                                         (2, "bob", "second", [])]
    assert copied[1].parent_id == copied[0].version_id and copied[0].timestamp == one.timestamp
    assert store.get_content(copied[1]) == b"two"
    assert [v.message for v in store.get_versions("/new/b.txt")] == [""]  # had its own: left alone
    assert store.get_versions("/new/none.txt") == []


def test_verify_finds_a_damaged_or_missing_version_record_and_missing_content(tmp_path):
    repo = Repository.init(str(tmp_path / "repo"))
    store = repo.versions()
    for i in range(3):
        store.create_version("/a.txt", b"a%d" % i)
    store.create_version("/b.txt", b"b")
    assert repo.verify().ok
    records = sorted((tmp_path / "repo" / "versions" / "files").rglob("000000000*"))
    a_records = [r for r in records if r.parent == records[0].parent]
    a_records[1].write_bytes(a_records[1].read_bytes().replace(b'"a', b'"A', 1))  # damaged
    content = next((tmp_path / "repo" / "versions" / "content").iterdir())
    content.unlink()  # one content record missing
    repo.refresh()
    report = repo.verify()
    assert not report.ok
    text = " ".join(report.problems)
    assert "is damaged" in text and "does not follow" in text and "not described" in text
    assert any(name.startswith("versions/files/") for name in report.damaged_objects)
