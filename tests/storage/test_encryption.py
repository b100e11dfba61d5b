"""Encryption at rest (issue 13, storage side): nothing readable in the bucket, every tampered
object refused, passwords and key files (docs/FORMAT.md, "encryption")."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from storage import Repository
from storage.audit import AuditLog, RepositoryMirror, read_mirror
from storage.backend.memory import MemoryBackend
from storage.errors import IntegrityError, InvalidInput, PasswordRequired, WrongPassword
from storage.layout import KEYS
from storage.objects import pack_name
from storage.repository.export import write_tar_stream
from tests.storage.test_damage_locality import _write, flip_byte

PASSWORD = "correct horse battery staple"
NAMES = ("quarterly-salaries.xlsx", "diary-of-a-backup-engineer.txt", "secret-project-folder")
CONTENT = b"the launch codes are 0000 and nobody may know them\n"


@pytest.fixture(autouse=True)
def _fast_scrypt(monkeypatch):
    # Key files made here use a small scrypt N (recorded in each file, so opening reads it).
    monkeypatch.setenv("BACKUPFLOW_SCRYPT_N", "1024")


def _tree(root: Path) -> Path:
    src = root / "src"
    (src / NAMES[2]).mkdir(parents=True)
    (src / NAMES[0]).write_bytes(CONTENT * 3)
    (src / NAMES[2] / NAMES[1]).write_bytes(CONTENT + os.urandom(400_000) + CONTENT)
    (src / "repeated.txt").write_bytes(CONTENT * 20_000)  # compresses: zstd output is sealed too
    return src


def _objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory):
    """An encrypted repository with two snapshots of one source (full, incremental) and one of
    another: (root, source, snapshot ids oldest first)."""
    base = tmp_path_factory.mktemp("enc")
    os.environ["BACKUPFLOW_SCRYPT_N"] = "1024"
    try:
        src = _tree(base)
        repo = Repository.init(str(base / "repo"), password=PASSWORD)
        ids = [repo.backup(str(src)).snapshot_id]
        (src / "later.txt").write_bytes(CONTENT + b"later")
        ids.append(repo.backup(str(src)).snapshot_id)
        other = base / "other"
        other.mkdir()
        (other / "other.bin").write_bytes(os.urandom(200_000))
        ids.append(repo.backup(str(other)).snapshot_id)
    finally:
        del os.environ["BACKUPFLOW_SCRYPT_N"]
    return base / "repo", src, ids


def test_no_file_name_content_or_plain_chunk_id_is_stored_in_the_clear(encrypted):
    root, src, _ = encrypted
    objects = _objects(root)
    assert {name.split("/")[0] for name in objects} >= {"config", "keys", "data", "index", "snapshots", "trees"}
    secrets = [n.encode() for n in NAMES] + [CONTENT[:24], b"later.txt", str(src).encode()]
    # The plain SHA-256 of a file (what an unencrypted repository names its chunk by) is not
    # there either, so a known file cannot be confirmed from the bucket.
    secrets += [hashlib.sha256((src / NAMES[0]).read_bytes()).hexdigest().encode()]
    found = [f"{name} holds {s[:30]!r}" for name, data in objects.items() for s in secrets if s in data]
    found += [name for name in objects for s in secrets if s in name.encode()]
    assert not found


def test_restore_and_verify_read_everything_back(encrypted, tmp_path):
    root, src, ids = encrypted
    repo = Repository.open(str(root), password=PASSWORD)
    assert repo.encrypted and repo.config.version == 2 and repo.stats().encryption == "aes256gcm-hkdf-hmac"
    assert repo.verify(read_data=True).ok
    repo.restore(ids[1], str(tmp_path / "out"))
    for path in src.rglob("*"):
        if path.is_file():
            assert (tmp_path / "out" / path.relative_to(src)).read_bytes() == path.read_bytes()


def test_the_same_file_in_two_repositories_has_unrelated_chunk_ids(tmp_path):
    src = _tree(tmp_path)
    a = Repository.init(str(tmp_path / "a"), password=PASSWORD)
    b = Repository.init(str(tmp_path / "b"), password=PASSWORD)
    chunks = []
    for repo in (a, b):
        snap = repo.snapshot(repo.backup(str(src)).snapshot_id)
        chunks.append({c for e in snap.entries for c in e.get("chunks", ())})
    assert chunks[0] and not chunks[0] & chunks[1]


def test_without_or_with_a_wrong_password_nothing_opens_and_nothing_is_written(encrypted):
    root, _, _ = encrypted
    before = _objects(root)
    with pytest.raises(PasswordRequired) as missing:
        Repository.open(str(root))
    with pytest.raises(WrongPassword) as wrong:
        Repository.open(str(root), password="not it")
    assert missing.value.exit_code == 16 and wrong.value.exit_code == 15
    assert "password" in wrong.value.message and "\n" not in wrong.value.message
    assert _objects(root) == before


def test_an_unencrypted_repository_works_as_before_and_ignores_a_password(tmp_path):
    src = _tree(tmp_path)
    repo = Repository.init(str(tmp_path / "plain"))
    sid = repo.backup(str(src)).snapshot_id
    again = Repository.open(str(tmp_path / "plain"), password="anything")
    assert not again.encrypted and again.config.version == 1 and again.stats().encryption == "none"
    assert again.snapshot(sid).entries and again.verify(read_data=True).ok
    with pytest.raises(InvalidInput):
        again.keys.list()


def test_two_keys_remove_one_and_rotate_a_password(tmp_path):
    root = str(tmp_path / "repo")
    repo = Repository.init(root, password="first")
    second = repo.keys.add("second", label="laptop")
    listed = repo.keys.list()
    assert len(listed) == 2 and [k.in_use for k in listed].count(True) == 1
    assert {k.label for k in listed} == {"", "laptop"} and all(k.kdf["name"] == "scrypt" for k in listed)
    assert Repository.open(root, password="second").keys.in_use == second
    first = Repository.open(root, password="first").keys.in_use
    with pytest.raises(InvalidInput, match="in use"):
        repo.keys.remove(first)
    Repository.open(root, password="second").keys.remove(first)
    with pytest.raises(WrongPassword):
        Repository.open(root, password="first")
    with pytest.raises(InvalidInput, match="last key"):
        Repository.open(root, password="second").keys.remove(second)
    rotated = Repository.open(root, password="second")
    rotated.keys.passwd("third")
    with pytest.raises(WrongPassword):
        Repository.open(root, password="second")
    assert len(Repository.open(root, password="third").keys.list()) == 1


def test_key_files_work_on_every_backend_kind(backend):
    repo = Repository.init("test-repo", backend=backend, password="one")
    repo.keys.add("two")
    assert len([o for o in backend.list(KEYS)]) == 2
    for password in ("one", "two"):
        assert Repository.open("test-repo", backend=backend, password=password).config.id == repo.config.id
    with pytest.raises(WrongPassword):
        Repository.open("test-repo", backend=backend, password="three")


# --- tampering -------------------------------------------------------------------------------

def _copy(encrypted, tmp_path) -> tuple[Path, list[str]]:
    root, _, ids = encrypted
    shutil.copytree(root, tmp_path / "repo")
    return tmp_path / "repo", ids


def _two(root: Path, prefix: str) -> tuple[Path, Path]:
    files = sorted(p for p in (root / prefix).rglob("*") if p.is_file())
    return files[0], files[1]


def _pack_of(root: Path, sid: str) -> Path:
    repo = Repository.open(str(root), password=PASSWORD)
    return root / pack_name(repo.snapshots.header(sid).packs[0])


TAMPER = {"flipped byte": lambda p, other: flip_byte(p),
          "truncated": lambda p, other: _write(p, p.read_bytes()[: len(p.read_bytes()) // 2]),
          "swapped": lambda p, other: _write(p, other.read_bytes())}


@pytest.mark.parametrize("how", list(TAMPER))
@pytest.mark.parametrize("kind", ["index", "snapshots", "trees", "data"])
def test_every_tampered_object_kind_is_named_by_verify(encrypted, tmp_path, kind, how):
    root, ids = _copy(encrypted, tmp_path)
    if kind == "data":
        target, other = _pack_of(root, ids[0]), _pack_of(root, ids[2])
    else:
        target, other = _two(root, kind)
    TAMPER[how](target, other)
    report = Repository.open(str(root), password=PASSWORD).verify(read_data=True)
    assert not report.ok
    assert target.relative_to(root).as_posix() in report.damaged_objects


@pytest.mark.parametrize("how", list(TAMPER))
def test_a_tampered_config_or_key_file_opens_nothing(encrypted, tmp_path, how):
    root, _ = _copy(encrypted, tmp_path)
    shutil.copytree(root, tmp_path / "intact")
    Repository.open(str(root), password=PASSWORD).keys.add("spare")
    key, spare = _two(root, "keys")
    both = key.read_bytes(), spare.read_bytes()
    TAMPER[how](key, spare)
    if how == "swapped":
        _write(spare, both[0])  # the two key files trade places
    else:
        TAMPER[how](spare, key)  # both keys: the password has no intact key file left
    with pytest.raises(IntegrityError):
        Repository.open(str(root), password=PASSWORD)
    other = tmp_path / "other"
    Repository.init(str(other), password=PASSWORD)
    shutil.rmtree(root / "keys")
    shutil.copytree(tmp_path / "intact" / "keys", root / "keys")
    TAMPER[how](root / "config", other / "config")  # the config alone: the key opens, the config not
    with pytest.raises(IntegrityError, match="config"):
        Repository.open(str(root), password=PASSWORD)
    shutil.rmtree(root / "keys")
    shutil.copytree(other / "keys", root / "keys")  # a whole other repository's config and keys
    if how != "swapped":
        with pytest.raises(IntegrityError):
            Repository.open(str(root), password=PASSWORD)
        return
    report = Repository.open(str(root), password=PASSWORD).verify()  # opens, but its keys open no object
    assert not report.ok and any(o.startswith("index/") for o in report.damaged_objects)


def test_a_tampered_blob_is_named_and_restore_gives_back_everything_else(encrypted, tmp_path):
    root, ids = _copy(encrypted, tmp_path)
    repo = Repository.open(str(root), password=PASSWORD)
    snap = repo.snapshot(ids[0])
    entry = next(e for e in snap.entries if e["path"].endswith(NAMES[1]))
    loc = repo.index.locations(entry["chunks"][0])[0]
    flip_byte(root / pack_name(loc.pack), loc.offset + loc.length // 2)
    report = Repository.open(str(root), password=PASSWORD).verify(read_data=True)
    assert pack_name(loc.pack) in report.damaged_objects
    assert report.damaged_files[ids[0]] == [entry["path"]]
    result = Repository.open(str(root), password=PASSWORD).restore(ids[0], str(tmp_path / "out"))
    assert list(result.not_restored) == [entry["path"]]
    assert (tmp_path / "out" / NAMES[0]).read_bytes() == CONTENT * 3


def test_the_audit_mirror_of_an_encrypted_repository_is_sealed_or_not_written(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(str(root), password=PASSWORD)
    without = AuditLog(tmp_path / "plain-log", mirror=RepositoryMirror(repo.backend))
    without.log_event("restore.started", target=f"/home/me/{NAMES[2]}")
    assert not (root / "audit").exists()  # never plaintext events in an encrypted repository
    log = AuditLog(tmp_path / "log", mirror=RepositoryMirror(repo.backend, repo.sealer))
    log.log_event("backup.started", target=f"/home/me/{NAMES[2]}", user="alice")
    log.log_event("backup.completed", target=f"/home/me/{NAMES[2]}", user="alice")
    stored = _objects(root / "audit")
    assert len(stored) == 2 and not any(NAMES[2].encode() in d or b"alice" in d for d in stored.values())
    assert read_mirror(repo.backend, sealer=repo.sealer) == log.get_events()
    with pytest.raises(PasswordRequired):
        read_mirror(repo.backend)
    victim = next((root / "audit").rglob("*.json"))
    flip_byte(victim)
    with pytest.raises(IntegrityError):
        read_mirror(repo.backend, sealer=repo.sealer)


def test_a_flipped_byte_in_a_sealed_pack_header_is_named(encrypted, tmp_path):
    root, ids = _copy(encrypted, tmp_path)
    pack = _pack_of(root, ids[0])
    flip_byte(pack, pack.stat().st_size - 20)  # inside the sealed header, before the trailer
    report = Repository.open(str(root), password=PASSWORD).verify(read_data=True)
    assert pack.relative_to(root).as_posix() in report.damaged_objects


def test_forget_prune_repair_and_export_work_on_an_encrypted_repository(encrypted, tmp_path):
    root, ids = _copy(encrypted, tmp_path)
    repo = Repository.open(str(root), password=PASSWORD)
    repo.forget(repo.plan_forget([ids[2]], prune=True))
    assert Repository.open(str(root), password=PASSWORD).prune().packs_deleted >= 1
    index = sorted((root / "index").iterdir())[0]
    index.unlink()
    repo = Repository.open(str(root), password=PASSWORD)
    assert repo.repair_index().packs_indexed >= 1
    repo = Repository.open(str(root), password=PASSWORD)
    assert repo.verify(read_data=True).ok and [s.id for s in repo.snapshots.all()] == ids[:2]
    result = repo.export_tar(ids[1], str(tmp_path / "out.tar.gz"))
    assert result.files >= 3 and (tmp_path / "out.tar.gz").stat().st_size > 0
    stream = io.BytesIO()  # the archive tier's streamed tar reads through the same sealer
    assert write_tar_stream(repo, repo.snapshot(ids[1]), stream) == result.files
    with tarfile.open(fileobj=io.BytesIO(stream.getvalue()), mode="r:gz") as tar:
        assert tar.extractfile(NAMES[0]).read() == CONTENT * 3


@pytest.mark.parametrize("how", list(TAMPER))
def test_verify_names_a_tampered_key_file_that_is_not_the_one_in_use(encrypted, tmp_path, how):
    root, _ = _copy(encrypted, tmp_path)
    repo = Repository.open(str(root), password=PASSWORD)
    spare = root / KEYS / repo.keys.add("spare")
    in_use = root / KEYS / repo.keys.in_use
    TAMPER[how](spare, in_use)
    report = Repository.open(str(root), password=PASSWORD).verify()
    assert not report.ok and report.damaged_objects == [spare.relative_to(root).as_posix()]


class _RacingBackend(MemoryBackend):
    """Another first backup creates the repository while this one writes its key file: the
    interleaving a race produces only sometimes, every time."""

    def __init__(self):
        super().__init__()
        self.raced = False

    def save(self, name, data, exclusive=True):
        if name.startswith(KEYS) and not self.raced:
            self.raced = True
            Repository.init("memory://race", backend=self, password=PASSWORD)
        return super().save(name, data, exclusive)


def test_the_loser_of_a_race_to_create_a_repository_opens_the_winners(tmp_path):
    backend = _RacingBackend()
    repo = Repository.open("memory://race", create=True, backend=backend, password=PASSWORD)
    assert backend.raced and len(list(backend.list(KEYS))) == 1  # the loser's key file is gone
    sid = repo.backup(str(_tree(tmp_path))).snapshot_id
    assert Repository.open("memory://race", backend=backend, password=PASSWORD).snapshot(sid).entries
