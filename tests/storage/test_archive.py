"""The archive tier's engine (storage.archive): a snapshot written as a standard tar.gz that plain
`tar` restores byte for byte, read back and checked, published by its metadata; listing and
removal for retention; and the choice of snapshots that never strands a kept one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from storage import Repository
from storage.archive import (
    check_archive, list_archives, parse_age, publish_archive, published, remove_archive, select, verify_stored,
    write_archive,
)
from storage.backend import open_backend
from storage.errors import IntegrityError, InvalidInput, NotFound
from tests.treegen import assert_same_tree, make_tree


@pytest.fixture
def one_snapshot(tmp_path):
    tree = make_tree(tmp_path / "src", seed=5)
    repo = Repository.init(str(tmp_path / "repo"))
    sid = repo.backup(str(tree.root), tags=["monthly"], description="before the move").snapshot_id
    return repo, repo.snapshots.load(sid), tree.root


def test_an_archive_is_a_tar_gz_that_plain_tar_restores_byte_for_byte(one_snapshot, tmp_path):
    repo, snap, src = one_snapshot
    dest_dir = tmp_path / "archives"
    dest = open_backend(str(dest_dir))
    written = write_archive(repo, snap, dest, level=9)
    check_archive(dest, written, snap)
    assert published(dest, snap.id) is None  # not an archive until its metadata is written
    meta = publish_archive(repo, snap, dest, written, level=9)

    out = tmp_path / "untarred"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(dest_dir / f"{snap.id}.tar.gz"), "-C", str(out)], check=True)
    assert_same_tree(src, out, mtimes=False)  # tar keeps mtimes to the microsecond
    listed = subprocess.run(["tar", "-tzf", str(dest_dir / f"{snap.id}.tar.gz")], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    assert len(listed) == len(snap.entries)

    doc = json.loads((dest_dir / f"{snap.id}.json").read_text())
    assert doc["snapshot_id"] == snap.id and doc["type"] == "full" and doc["source"] == snap.source
    assert doc["tags"] == ["monthly"] and doc["description"] == "before the move" and doc["time"] == snap.time
    assert doc["files"] == written.files and doc["bytes"] == os.path.getsize(dest_dir / f"{snap.id}.tar.gz")
    assert doc["sha256"] == hashlib.sha256((dest_dir / f"{snap.id}.tar.gz").read_bytes()).hexdigest()
    assert doc["compression_level"] == 9
    assert [m.id for m in list_archives(str(dest_dir))] == [snap.id] and meta.sha256 == doc["sha256"]
    assert not [p for p in os.listdir(dest_dir) if p.startswith(".tmp-")]


def test_the_same_snapshot_gives_the_same_bytes_so_a_rerun_replaces_nothing_it_should_not(one_snapshot, tmp_path):
    repo, snap, _ = one_snapshot
    dest = open_backend(str(tmp_path / "archives"))
    assert write_archive(repo, snap, dest, 6).sha256 == write_archive(repo, snap, dest, 6).sha256
    assert sorted(os.listdir(tmp_path / "archives")) == [f"{snap.id}.tar.gz"]


def test_a_damaged_archive_is_caught_by_the_read_back_and_by_verify(one_snapshot, tmp_path):
    repo, snap, _ = one_snapshot
    dest = open_backend(str(tmp_path / "archives"))
    written = write_archive(repo, snap, dest, 6)
    path = tmp_path / "archives" / written.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="damaged on the way|other bytes"):
        check_archive(dest, written, snap)
    path.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(IntegrityError):
        check_archive(dest, written, snap)


def test_verify_stored_names_a_changed_or_missing_archive(one_snapshot, tmp_path):
    repo, snap, _ = one_snapshot
    dest = open_backend(str(tmp_path / "archives"))
    meta = publish_archive(repo, snap, dest, write_archive(repo, snap, dest, 6), 6)
    assert verify_stored(dest, meta) is None
    path = tmp_path / "archives" / meta.file
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify_stored(dest, meta)
    path.unlink()
    assert "missing" in verify_stored(dest, meta)


def test_a_write_that_fails_half_way_leaves_no_archive_and_no_temporary(one_snapshot, tmp_path):
    repo, snap, _ = one_snapshot
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file():
            pack.unlink()  # the repository lost its data: the export fails part-way
            break
    dest_dir = tmp_path / "archives"
    with pytest.raises((IntegrityError, NotFound)):
        write_archive(repo, snap, open_backend(str(dest_dir)), 6)
    assert not dest_dir.exists() or os.listdir(dest_dir) == []
    assert list_archives(str(dest_dir)) == []


def test_remove_archive_deletes_data_and_metadata_and_is_idempotent(one_snapshot, tmp_path):
    repo, snap, _ = one_snapshot
    dest = open_backend(str(tmp_path / "archives"))
    publish_archive(repo, snap, dest, write_archive(repo, snap, dest, 6), 6)
    assert remove_archive(str(tmp_path / "archives"), snap.id) is True
    assert os.listdir(tmp_path / "archives") == []
    assert remove_archive(str(tmp_path / "archives"), snap.id) is False
    with pytest.raises(InvalidInput):
        remove_archive(str(tmp_path / "archives"), snap.id[:8])


class _Snap:
    def __init__(self, sid, typ, chain, days_ago, source="/src", now=None):
        self.id, self.type, self.chain, self.host, self.source = sid * 64, typ, chain, "h", source
        self.time = ((now or NOW) - timedelta(days=days_ago)).isoformat()
        self.stats = {"bytes_total": 10}


NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)


def test_select_keeps_the_newest_and_the_young_and_never_strands_a_kept_snapshot():
    snaps = [_Snap("a", "full", "c1", 100), _Snap("b", "incremental", "c1", 90), _Snap("c", "incremental", "c1", 80),
             _Snap("d", "full", "c2", 60), _Snap("e", "incremental", "c2", 50), _Snap("f", "incremental", "c2", 5),
             _Snap("g", "full", "c3", 3)]
    plan = select(snaps, older_than_days=30, keep=1, now=NOW)
    # chain c1 goes whole; c2's full and first incremental are needed by f (5 days old: stays)
    assert plan.snapshots == ["a" * 64, "b" * 64, "c" * 64]
    assert "depends on it" in plan.skipped["d" * 64] and "depends on it" in plan.skipped["e" * 64]
    assert "younger" in plan.skipped["f" * 64] and "newest" in plan.skipped["g" * 64]
    assert select(snaps, 30, keep=7, now=NOW).snapshots == []
    assert select(snaps, 30, keep=0, now=NOW).snapshots == ["a" * 64, "b" * 64, "c" * 64]
    assert select(snaps, 4, keep=0, now=NOW).snapshots == [s.id for s in snaps[:6]]


def test_keep_counts_each_source_on_its_own():
    snaps = [_Snap("a", "full", "c1", 100, "/one"), _Snap("b", "full", "c2", 90, "/two"),
             _Snap("c", "full", "c3", 80, "/one")]
    assert select(snaps, 30, keep=1, now=NOW).snapshots == ["a" * 64]


@pytest.mark.parametrize("text,days", [("30d", 30), ("12h", 0.5), ("2w", 14), ("7", 7), (0, 0)])
def test_ages(text, days):
    assert parse_age(text) == days


@pytest.mark.parametrize("text", ["soon", "-3d", "", "d"])
def test_bad_ages_are_one_sentence(text):
    with pytest.raises(InvalidInput, match="30d, 12h or 2w"):
        parse_age(text)


CLASS_FOR = {"s3": ("GLACIER_IR", "DEEP_ARCHIVE"), "az": ("Cool", "Archive"), "gs": ("ARCHIVE",)}


def test_archives_on_the_cloud_servers_land_in_the_storage_class_asked_for(one_snapshot, cloud_destination):
    """On moto, Azurite and fake-gcs-server: the archive streams up, reads back, is published in
    each class the store records (S3 storage class, Azure blob tier, GCS storage class), and
    is listed and removed by URL as retention does."""
    from storage.backend.streams import check_storage_class, storage_class_of

    repo, snap, _ = one_snapshot
    url, options = cloud_destination.url, cloud_destination.options
    dest = open_backend(url, options)
    for asked in CLASS_FOR[url.split(":")[0]]:
        storage_class = check_storage_class(url, asked.lower())
        written = write_archive(repo, snap, dest, 6, storage_class)
        check_archive(dest, written, snap)
        meta = publish_archive(repo, snap, dest, written, 6, storage_class)
        # fake-gcs-server accepts the rewrite that sets a class but always reports STANDARD
        # (it does not model classes); moto and Azurite record what was asked for.
        assert storage_class_of(dest, meta.file) == (asked if not url.startswith("gs:") else "STANDARD")
        assert verify_stored(dest, meta) is None
        assert [(m.id, m.storage_class) for m in list_archives(url, options)] == [(snap.id, asked)]
    assert remove_archive(url, snap.id, options) is True
    assert list_archives(url, options) == [] and list(dest.list("")) == []


def test_the_approval_request_of_an_archive_says_what_moves_where_and_how_risky():
    from storage.guardian.describe import preview_lines, summary_line
    from storage.guardian.risk import assess

    op = {"kind": "archive", "repo": "/r", "destination": "s3://b/a", "snapshots": ["a" * 64], "bytes_freed": 2048,
          "last_snapshot": False}
    assert summary_line(op) == "archive 1 snapshot(s) of /r to s3://b/a"
    assert "`aaaaaaaa`" in "\n".join(preview_lines(op)) and "2.0 KiB" in "\n".join(preview_lines(op))
    assert assess(op).level.value == "medium"
    assert assess({**op, "last_snapshot": True}).level.value == "high"
