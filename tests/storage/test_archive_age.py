"""Archives of an encrypted repository are age files (scrypt recipient, the repository's
password): age's own implementation (pyrage) decrypts them to a tar.gz that plain tar restores,
and reads back what it encrypted; a wrong password or a changed byte is refused."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from storage import Repository
from storage.archive import check_archive, publish_archive, restore_archive, verify_stored, write_archive
from storage.archive.age import Decryptor, Encryptor
from storage.backend import open_backend
from storage.errors import IntegrityError, PasswordRequired, WrongPassword
from tests.treegen import assert_same_tree, make_tree

pyrage = pytest.importorskip("pyrage")

PASSWORD = "correct horse battery staple"


def test_age_streams_agree_with_age_itself_both_ways():
    for size in (0, 1, 65536, 65537, 200_000):  # chunk edges: empty, exactly one chunk, one byte over
        data = os.urandom(size)
        out = io.BytesIO()
        enc = Encryptor(out, PASSWORD, log_n=10)
        for i in range(0, size, 7000):
            enc.write(data[i:i + 7000])
        enc.close()
        assert pyrage.passphrase.decrypt(out.getvalue(), PASSWORD) == data, size
        assert Decryptor(io.BytesIO(out.getvalue()), PASSWORD).read() == data, size
    data = os.urandom(140_000)
    theirs = pyrage.passphrase.encrypt(data, PASSWORD)  # age's default work factor: a second or two
    assert Decryptor(io.BytesIO(theirs), PASSWORD).read() == data


def test_a_wrong_password_or_a_changed_byte_is_refused():
    out = io.BytesIO()
    enc = Encryptor(out, PASSWORD, log_n=10)
    enc.write(b"x" * 100_000)
    enc.close()
    with pytest.raises(WrongPassword):
        Decryptor(io.BytesIO(out.getvalue()), "not it")
    damaged = bytearray(out.getvalue())
    damaged[-100] ^= 1
    with pytest.raises(IntegrityError, match="damaged or the file was cut short"):
        Decryptor(io.BytesIO(bytes(damaged)), PASSWORD).read()
    with pytest.raises(IntegrityError):
        Decryptor(io.BytesIO(out.getvalue()[:-20]), PASSWORD).read()


def test_an_encrypted_repository_gives_an_age_archive_that_age_and_tar_restore(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUPFLOW_SCRYPT_N", "1024")  # the key file's and the archive's work factor
    tree = make_tree(tmp_path / "src", seed=3)
    repo = Repository.init(str(tmp_path / "repo"), password=PASSWORD)
    snap = repo.snapshots.load(repo.backup(str(tree.root)).snapshot_id)
    dest = open_backend(str(tmp_path / "archives"))
    written = write_archive(repo, snap, dest, 6, password=PASSWORD)
    assert written.file == f"{snap.id}.tar.gz.age" and written.encrypted
    check_archive(dest, written, snap, PASSWORD)
    meta = publish_archive(repo, snap, dest, written, 6)
    assert meta.encrypted and verify_stored(dest, meta) is None

    stored = (tmp_path / "archives" / written.file).read_bytes()
    assert stored.startswith(b"age-encryption.org/v1\n-> scrypt ") and b" 10\n" in stored[:100]
    out = tmp_path / "untarred"
    out.mkdir()
    subprocess.run(["tar", "-xz", "-C", str(out)], input=pyrage.passphrase.decrypt(stored, PASSWORD), check=True)
    assert_same_tree(tree.root, out, mtimes=False)

    back = tmp_path / "restored"
    assert restore_archive(dest, meta, str(back), PASSWORD)["not_restored"] == {}
    assert_same_tree(tree.root, back, mtimes=False)
    with pytest.raises(PasswordRequired):
        restore_archive(dest, meta, str(tmp_path / "no-password"))
    with pytest.raises(WrongPassword):
        restore_archive(dest, meta, str(tmp_path / "wrong"), "not it")
