"""One damaged object must not take the repository down (issue 9 part 4): commands skip and
name a damaged snapshot or index object and go on with the rest; prune stays safe."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from storage import Repository
from storage.errors import IntegrityError
from storage.objects import Codec
from storage.snapshots.manifest import snapshot_name


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        os.chmod(path, 0o644)
    path.write_bytes(data)


def flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    _write(path, bytes(data))


@pytest.fixture
def two_sources(tmp_path):
    """Two sources, one full each, then an incremental of source one: (root, ids by name)."""
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    ids = {}
    for name in ("one", "two"):
        src = tmp_path / name
        (src / "sub").mkdir(parents=True)
        (src / "sub" / f"{name}.bin").write_bytes(os.urandom(120_000))
        (src / f"{name}.txt").write_text(f"{name}\n" * 500)
        ids[name] = repo.backup(str(src)).snapshot_id
    (tmp_path / "one" / "new.txt").write_text("new\n")
    ids["one-inc"] = repo.backup(str(tmp_path / "one")).snapshot_id
    return root, ids


def crafted_manifest(root: Path, doc) -> str:
    """A manifest whose name is the hash of its content, but whose content is not usable."""
    data = json.dumps(doc).encode()
    sid = hashlib.sha256(data).hexdigest()
    _write(root / snapshot_name(sid), Codec.pack_doc(data))
    return sid


def test_flipped_manifest_is_skipped_named_and_forgettable(two_sources, tmp_path):
    root, ids = two_sources
    flip_byte(root / snapshot_name(ids["two"]))
    repo = Repository.open(str(root))
    listed = [s.id for s in repo.snapshots.all()]
    assert listed == [ids["one"], ids["one-inc"]]
    assert list(repo.snapshots.damaged) == [ids["two"]]
    assert ids["two"][:8] in repo.snapshots.damaged[ids["two"]]
    stats = repo.stats()
    assert stats["snapshots"] == 2 and ids["two"] in stats["damaged_snapshots"]

    # the intact snapshots still restore, a full backup still works
    repo.restore(ids["one-inc"], str(tmp_path / "out"))
    assert (tmp_path / "out" / "new.txt").read_text() == "new\n"
    assert repo.backup(str(tmp_path / "one"), type="full").type == "full"

    # prune refuses (it cannot tell what the damaged manifest needs), naming it, deleting nothing
    packs_before = sorted(p.name for p in (root / "data").rglob("*") if p.is_file())
    with pytest.raises(IntegrityError, match=ids["two"][:8]) as err:
        Repository.open(str(root)).prune()
    assert "deleted nothing" in err.value.message
    assert sorted(p.name for p in (root / "data").rglob("*") if p.is_file()) == packs_before

    # the damaged id can be forgotten; then prune goes ahead
    repo = Repository.open(str(root))
    plan = repo.plan_forget([ids["two"][:10]])
    assert plan.snapshots == [ids["two"]] and plan.damaged == [ids["two"]]
    assert repo.forget(plan)["forgotten"] == [ids["two"]]
    report = Repository.open(str(root)).prune()
    assert report.packs_deleted == 1          # source two's only pack
    assert Repository.open(str(root)).verify(read_data=True).ok


@pytest.mark.parametrize("doc", [["a", "list"], {"time": 5}], ids=["json-list", "time-is-a-number"])
def test_malformed_manifest_never_crashes_a_command(two_sources, tmp_path, doc):
    root, ids = two_sources
    if isinstance(doc, dict):
        good = Repository.open(str(root)).snapshot(ids["two"])
        doc = {**json.loads(good.to_bytes()), **doc}
    bad = crafted_manifest(root, doc)
    repo = Repository.open(str(root))
    assert {s.id for s in repo.snapshots.all()} == {ids["one"], ids["two"], ids["one-inc"]}
    assert bad in repo.snapshots.damaged
    with pytest.raises(IntegrityError, match=bad[:8]):
        repo.snapshot(bad)
    assert repo.snapshot("latest").id in ids.values()
    report = repo.verify()
    assert not report.ok and bad in report.damaged_snapshots
    assert any(bad[:8] in p for p in report.problems)


def test_stray_file_in_snapshots_is_ignored_by_commands_and_named_by_verify(two_sources, tmp_path):
    root, ids = two_sources
    _write(root / "snapshots" / "notes.txt", b"hello")
    repo = Repository.open(str(root))
    assert len(repo.snapshots.all()) == 3 and repo.snapshots.damaged == {}
    assert repo.prune(dry_run=True).packs_deleted == 0
    report = repo.verify()
    assert not report.ok and any("snapshots/notes.txt" in p for p in report.problems)


def test_damaged_index_object_stays_local(two_sources, tmp_path):
    root, ids = two_sources
    index_obj = sorted((root / "index").iterdir())[0]
    flip_byte(index_obj)
    repo = Repository.open(str(root))
    assert list(repo.index.damaged) == [f"index/{index_obj.name}"]
    assert repo.index.recovered                        # its packs were read from their headers
    for sid in ids.values():                           # every snapshot still restores
        repo.restore(sid, str(tmp_path / f"out-{sid[:8]}"))
    report = Repository.open(str(root)).verify(read_data=True)
    assert not report.ok and f"index/{index_obj.name}" in report.damaged_objects
    assert report.damaged_files == {}                  # nothing is lost: only the index object is damaged
    with pytest.raises(IntegrityError, match="repair index"):
        Repository.open(str(root)).prune()
