"""Restore against hostile repositories (issue 9 parts 1 and 6): the generated corpus of
tests/hostile_trees.py through the engine, the three-restore attack of issue 9, and targets
that are full, read-only or under a file. Each ends in one sentence with a documented exit
code, and nothing is ever written outside the target."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from storage import Repository
from storage.errors import IntegrityError, InvalidInput, PathEscape, PermanentError, RestoreIncomplete
from tests.hostile_trees import Case, Kit, corpus, save

DONOR = b"the one real file of the donor snapshot\n" * 100
CASES = [c.name for c in corpus(Kit({"size": 0, "chunks": [], "sha256": "", "mtime_ns": 0}, "/outside"))]


@pytest.fixture(scope="module")
def donor(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    (base / "src").mkdir()
    (base / "src" / "ok.txt").write_bytes(DONOR)
    repo = Repository.init(str(base / "repo"))
    sid = repo.backup(str(base / "src")).snapshot_id
    entry = next(e for e in repo.snapshot(sid).tree if e["path"] == "ok.txt")
    return repo, sid, entry


def _everything_under(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, ds, fs in os.walk(path) for n in ds + fs)


def _read_below(root: Path, rel: str) -> bytes:
    """Read ``root/rel`` through folder descriptors (``rel`` may be longer than PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        *folders, name = rel.split("/")
        for part in folders:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        with os.fdopen(ffd, "rb") as f:
            return f.read()
    finally:
        os.close(fd)


@pytest.fixture
def outside(tmp_path):
    """A folder beside the target that must stay exactly as it is."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim.txt").write_bytes(b"must stay")
    yield out
    assert _everything_under(out) == ["victim.txt"]
    assert (out / "victim.txt").read_bytes() == b"must stay" and os.stat(out / "victim.txt").st_nlink == 1


@pytest.mark.parametrize("name", CASES)
def test_hostile_tree_ends_in_one_sentence_and_writes_nothing_outside(donor, tmp_path, outside, name):
    repo, sid, entry = donor
    case = {c.name: c for c in corpus(Kit(entry, str(outside)))}[name]
    bad = save(repo, sid, case)
    target = tmp_path / "target"
    reopened = Repository.open(repo.url)
    try:
        _check_case(reopened, bad, case, target)
    finally:
        subprocess.run(["rm", "-rf", str(target)], check=True)  # shutil.rmtree recurses too deep for deep-3000


def _check_case(reopened: Repository, bad: str, case: Case, target: Path) -> None:
    if case.error is not None:
        with pytest.raises(case.error) as err:
            reopened.restore(bad, str(target))
        assert case.says in err.value.message and "\n" not in err.value.message, err.value.message
        assert err.value.exit_code == case.exit_code
        assert _everything_under(target) == [], "a refused tree wrote something"
        with pytest.raises(case.error):  # the preview asked for approval refuses it as well
            reopened.plan_restore(bad, str(target))
        return
    result = reopened.restore(bad, str(target))
    assert sorted(result.not_restored) == sorted(case.not_restored)
    for path in case.restored:
        assert _read_below(target, path) == DONOR, path
    if case.not_restored:
        err = RestoreIncomplete.of(result.to_dict())
        assert err.exit_code == case.exit_code == 13
        assert case.says in err.message and "\n" not in err.message, err.message
        for path in case.not_restored:
            assert not os.path.lexists(target / path)
    left = subprocess.run(["find", str(target), "-name", ".bf-restore-*"], capture_output=True, text=True, check=True)
    assert left.stdout == "", "temporary files were left behind"


@pytest.mark.parametrize("first_link", ["restored", "made by the user"])
def test_issue_9_three_restores_into_one_target_never_write_outside(donor, tmp_path, outside, first_link):
    """issue 9 part 1: a symlink d -> outside in the target (from a first restore, or the
    user's own), then a snapshot whose hard link c names d/victim.txt, then one with a plain
    file c: the outside file was first linked into the target, then overwritten."""
    repo, sid, entry = donor
    k = Kit(entry, str(outside))
    target = tmp_path / "target"
    if first_link == "restored":
        repo.restore(save(repo, sid, _tree([k.file("ok.txt"), k.symlink("d", str(outside))])), str(target))
    else:
        target.mkdir()
        os.symlink(outside, target / "d")
    assert os.readlink(target / "d") == str(outside)

    unknown = _tree([k.file("ok.txt"), {**k.file("d/victim.txt"), "type": "whatever"}, k.hardlink("c", "d/victim.txt")])
    with pytest.raises(IntegrityError, match="unknown type 'whatever'"):
        repo.restore(save(repo, sid, unknown), str(target))
    as_file = _tree([k.file("ok.txt"), k.file("d/victim.txt"), k.hardlink("c", "d/victim.txt")])
    with pytest.raises(PathEscape, match="'d' in the target is a symlink"):
        repo.restore(save(repo, sid, as_file), str(target))
    assert not os.path.lexists(target / "c")

    repo.restore(save(repo, sid, _tree([k.file("ok.txt"), k.file("c")])), str(target))
    assert (target / "c").read_bytes() == DONOR and os.stat(target / "c").st_nlink == 1


def _tree(entries: list[dict]) -> Case:
    return Case("inline", entries)


def test_a_symlinked_file_position_is_replaced_and_a_hard_link_never_reaches_outside(donor, tmp_path, outside):
    """The source of a hard link is a symlink to an outside file in the target: the file is
    restored in its place (the symlink replaced, not followed) and the link made to it."""
    repo, sid, entry = donor
    k = Kit(entry, str(outside))
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside / "victim.txt", target / "src.txt")
    repo.restore(save(repo, sid, _tree([k.file("src.txt"), k.hardlink("c", "src.txt")])), str(target))
    assert not os.path.islink(target / "src.txt")
    assert os.path.samefile(target / "src.txt", target / "c") and (target / "c").read_bytes() == DONOR


def test_a_target_below_a_file_is_one_sentence(donor, tmp_path):
    """`backupflow restore latest afile/sub` (issue 9 part 6)."""
    repo, sid, _ = donor
    (tmp_path / "afile").write_text("a file")
    with pytest.raises(InvalidInput, match="afile is a file"):
        repo.restore(sid, str(tmp_path / "afile" / "sub"))
    with pytest.raises(InvalidInput, match="afile is a file"):
        repo.plan_restore(sid, str(tmp_path / "afile" / "sub"))
    assert (tmp_path / "afile").read_text() == "a file"


@pytest.fixture
def small_mount(tmp_path):
    """A 1 MiB tmpfs (a full disk after 1 MiB), mounted as root; skipped where mounting is not allowed."""
    where = tmp_path / "mnt"
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    base = tmp_path_factory.mktemp("bigger")
    src = base / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(os.urandom(400_000))
    repo = Repository.init(str(base / "repo"))
    repo.backup(str(src))
    return repo, src


def test_restore_into_a_full_file_system_is_one_sentence_and_leaves_nothing_half_written(bigger, small_mount):
    repo, src = bigger
    before = sorted(o.name for o in repo.backend.list(""))
    with pytest.raises(PermanentError, match="No space is left") as err:
        repo.restore("latest", str(small_mount / "out"))
    assert err.value.exit_code == 8 and "\n" not in err.value.message
    for p in _everything_under(small_mount / "out"):
        assert (small_mount / "out" / p).read_bytes() == (src / p).read_bytes(), f"{p} looks whole but is not"
    assert sorted(o.name for o in repo.backend.list("")) == before
    assert Repository.open(repo.url).verify(read_data=True).ok


def test_restore_onto_a_read_only_target_is_one_sentence(bigger, small_mount):
    repo, _ = bigger
    (small_mount / "out").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    with pytest.raises(PermanentError, match="read-only file system") as err:
        repo.restore("latest", str(small_mount / "out"))
    assert err.value.exit_code == 8
    with pytest.raises(PermanentError, match="read-only file system"):
        repo.restore("latest", str(small_mount / "new" / "out"))
    assert Repository.open(repo.url).verify(read_data=True).ok


def test_what_stands_in_the_way_in_the_target_is_named_not_followed(donor, tmp_path, outside):
    """A folder where the snapshot has a file or a symlink: those two are left out and named,
    the rest restored. A file where the snapshot has a folder: one sentence, nothing written."""
    repo, sid, entry = donor
    k = Kit(entry, str(outside))
    target = tmp_path / "target"
    (target / "f" / "inside").mkdir(parents=True)
    (target / "s" / "inside").mkdir(parents=True)
    bad = save(repo, sid, _tree([k.file("ok.txt"), k.file("f"), k.symlink("s", str(outside))]))
    result = repo.restore(bad, str(target))
    assert sorted(result.not_restored) == ["f", "s"] and "folder" in result.not_restored["s"]
    assert (target / "ok.txt").read_bytes() == DONOR and (target / "f" / "inside").is_dir()
    assert not os.path.islink(target / "s")

    other = tmp_path / "other"
    other.mkdir()
    (other / "d").write_text("a file")
    with pytest.raises(InvalidInput, match="'d' in the target is not a folder"):
        repo.restore(save(repo, sid, _tree([k.dir("d"), k.file("d/x")])), str(other))
    assert _everything_under(other) == ["d"] and (other / "d").read_text() == "a file"
