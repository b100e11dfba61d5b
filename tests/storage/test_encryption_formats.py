"""Encrypted repositories written by earlier backupflow keep working, and sealed blobs show
nothing of where they start and cannot be altered (docs/FORMAT.md, "encryption")."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import pytest

from storage import Repository
from storage.crypto import MasterKey
from storage.crypto.sealer import NONCE, SALT
from storage.errors import IntegrityError
from storage.objects import Codec, pack_name

FIXTURE = Path(__file__).parent / "data" / "encrypted-v2-per-object-subkeys.tar.gz"
FIXTURE_PASSWORD = "written with per-object subkeys"
OLD_SNAPSHOT = "2778e5138e2e89111d9dec8ca1c9edd475c6bbe6637e65dc7f2bcda2c1e13e2d"


def _fixture_source(root: Path) -> Path:
    """The files the fixture repository holds (made the same way when it was written)."""
    src = root / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "notes.txt").write_bytes(
        b"".join(b"line %d of the notes written before session keys\n" % i for i in range(14000)))
    (src / "noise.bin").write_bytes(random.Random(13).randbytes(3000))
    (src / "small.txt").write_bytes(b"a small file\n")
    return src


def _same_tree(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.fixture
def old_repository(tmp_path) -> Path:
    """A repository whose every object is sealed under a subkey of its own (the first
    encrypted format), unpacked into ``tmp_path``."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "repo"


def test_a_repository_sealed_with_per_object_subkeys_restores_verifies_and_takes_new_backups(
        old_repository, tmp_path):
    before = _fixture_source(tmp_path / "before")
    repo = Repository.open(str(old_repository), password=FIXTURE_PASSWORD)
    assert repo.encrypted and repo.verify(read_data=True).ok
    repo.restore(OLD_SNAPSHOT, str(tmp_path / "restored-before"))
    _same_tree(before, tmp_path / "restored-before")

    src = _fixture_source(tmp_path / "after")
    (src / "new.txt").write_bytes(b"written after the format changed\n" * 5000)
    (src / "docs" / "notes.txt").write_bytes((src / "docs" / "notes.txt").read_bytes() + b"one more line\n")
    new = repo.backup(str(src)).snapshot_id
    again = Repository.open(str(old_repository), password=FIXTURE_PASSWORD)
    assert again.verify(read_data=True).ok  # blobs of both formats side by side
    again.restore(new, str(tmp_path / "restored-after"))
    _same_tree(src, tmp_path / "restored-after")
    again.restore(OLD_SNAPSHOT, str(tmp_path / "restored-old-again"))
    _same_tree(before, tmp_path / "restored-old-again")



def test_no_two_blobs_begin_alike_so_a_pack_does_not_show_where_its_blobs_start(tmp_path, monkeypatch):
    # Pack headers are sealed so that blob boundaries, and with them the sizes of small files,
    # stay hidden; a salt or counter shared by blobs would mark every boundary.
    monkeypatch.setenv("BACKUPFLOW_SCRYPT_N", "1024")
    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(5)
    for i in range(60):
        (src / f"f{i}.bin").write_bytes(rnd.randbytes(rnd.randrange(100, 300_000)))
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    repo.backup(str(src))
    heads = [repo.backend.load(pack_name(loc.pack), loc.offset, SALT + NONCE) for _, loc in repo.index.items()]
    assert len(heads) >= 60
    assert len({h[:SALT] for h in heads}) == len(heads) and len({h[SALT:] for h in heads}) == len(heads)


def test_a_blob_with_its_salt_nonce_or_tag_changed_is_refused():
    c = Codec(3, MasterKey.new().sealer())
    raw = random.Random(1).randbytes(50_000)
    stored, flags = c.encode(raw, "a" * 64)
    stored = bytes(stored)
    assert c.decode(stored, flags, len(raw), "a" * 64) == raw
    for at in (0, SALT - 1, SALT, SALT + NONCE - 1, len(stored) - 1):
        bad = bytearray(stored)
        bad[at] ^= 1
        with pytest.raises(IntegrityError, match="fails authentication"):
            c.decode(bytes(bad), flags, len(raw), "a" * 64)
