"""Restore: whole snapshots and selected paths, every chunk checked, nothing written outside the target."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from storage import Repository
from storage.backend import HOST_TAG
from storage.errors import NotFound, PathEscape
from storage.objects import pack_name
from tests.treegen import Fingerprint, assert_same_tree, fingerprint, make_tree


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory):
    base = tmp_path_factory.mktemp("restore")
    tree = make_tree(base / "src", seed=11)
    repo = Repository.init(str(base / "repo"))
    result = repo.backup(str(tree.root))
    return repo, tree, result.snapshot_id


def _everything_under(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, ds, fs in os.walk(path) for n in ds + fs)


def test_whole_snapshot_restores_identically(backed_up, tmp_path):
    repo, tree, sid = backed_up
    result = repo.restore(sid[:10], str(tmp_path / "out"))
    assert result.snapshot_id == sid
    assert_same_tree(tree.root, tmp_path / "out")


def test_a_target_without_hard_links_gets_copies_of_the_linked_files(backed_up, tmp_path, monkeypatch):
    """A FAT, exFAT or SMB target cannot hold hard links (none can be mounted on the test
    machines, so link(2) is made to fail as there); each link becomes a copy of its file."""
    repo, tree, sid = backed_up
    expected = fingerprint(tree.root)

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", src, None, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "link", refuse)
        result = repo.restore(sid, str(tmp_path / "out"))
    groups = sum(len(g) - 1 for g in expected.hardlinks)
    assert groups and result.hardlinks_copied == groups
    assert_same_tree(Fingerprint(expected.entries, set()), tmp_path / "out")  # same content, no links


def test_a_target_without_symlinks_gets_everything_else_and_names_the_links_it_left_out(backed_up, tmp_path,
                                                                                      monkeypatch):
    """FAT and exFAT have no symlinks (symlink(2) fails with EPERM there; none can be mounted on
    the test machines). The rest of the snapshot is restored and each left-out link is named."""
    repo, tree, sid = backed_up
    expected = fingerprint(tree.root)
    links = sorted(p for p, e in expected.entries.items() if e[0] == "symlink")

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", src, None, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "symlink", refuse)
        result = repo.restore(sid, str(tmp_path / "out"))
    assert links and sorted(result.symlinks_skipped) == links
    rest = {p: e for p, e in expected.entries.items() if p not in links}
    assert_same_tree(Fingerprint(rest, expected.hardlinks), tmp_path / "out")


def test_restore_over_a_changed_copy_brings_the_snapshot_back(backed_up, tmp_path):
    repo, tree, sid = backed_up
    out = tmp_path / "out"
    repo.restore(sid, str(out))
    (out / "with space.txt").write_text("local edit")
    os.chmod(out / "bin/run.sh", 0o600)
    os.remove(out / "link-to-file")
    os.remove(out / "link-dangling")
    os.symlink("elsewhere", out / "link-dangling")        # a symlink pointing somewhere else
    (out / "empty-dir").rmdir()
    repo.restore(sid, str(out))
    assert_same_tree(tree.root, out)


def test_selected_paths_only(backed_up, tmp_path):
    repo, tree, sid = backed_up
    out = tmp_path / "out"
    wanted = ["media", "odd folder ü/-rf", "hard/second name.txt", "link-dangling"]
    repo.restore(sid, str(out), include=wanted)
    src_fp = fingerprint(tree.root).entries
    got = fingerprint(out).entries
    expected = {p for p in src_fp if any(p == w or p.startswith(w + "/") for w in wanted)}
    # only what was asked for, plus the folders that hold it
    assert set(got) == expected | {"odd folder ü", "hard"}
    for p in expected:
        if src_fp[p][0] == "file":  # a hard link restored without its primary keeps the content
            assert got[p][:2] + got[p][3:] == src_fp[p][:2] + src_fp[p][3:], p
            assert got[p][2] == src_fp[p][2], f"{p}: mtime"
        else:
            assert got[p] == src_fp[p], p


def test_unknown_include_is_a_clear_error(backed_up, tmp_path):
    repo, _, sid = backed_up
    with pytest.raises(NotFound, match="not-there"):
        repo.restore(sid, str(tmp_path / "out"), include=["not-there"])
    assert not (tmp_path / "out").exists()


# --- nothing is ever written outside the target ----------------------------------------------

def _crafted(repo: Repository, sid: str, extra: list[dict]) -> str:
    """Save a copy of snapshot ``sid`` with ``extra`` entries, as a hostile repository would."""
    snap = repo.snapshot(sid)
    real_file = next(e for e in snap.tree if e["type"] == "file" and e["chunks"])
    entries = []
    for e in extra:
        e = dict(e)
        if e["type"] == "file":
            e.update({k: real_file[k] for k in ("size", "chunks", "sha256", "mtime_ns")}, mode=0o644)
        entries.append(e)
    crafted = type(snap)(**{**snap.__dict__, "id": "", "tree": sorted(snap.tree + entries, key=lambda x: x["path"])})
    return repo.snapshots.save(crafted)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "below-symlink", "hardlink-out", "dotdot-deep"])
def test_hostile_manifest_is_refused_and_nothing_is_written(backed_up, tmp_path, case):
    repo, _, sid = backed_up
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    extra = {
        "dotdot": [{"path": "../outside/escaped.txt", "type": "file"}],
        "dotdot-deep": [{"path": "media/../../outside/escaped.txt", "type": "file"}],
        "absolute": [{"path": str(outside / "escaped.txt"), "type": "file"}],
        "below-symlink": [
            {"path": "zz-link", "type": "symlink", "target": str(outside), "mode": 0o777, "mtime_ns": 0},
            {"path": "zz-link/escaped.txt", "type": "file"},
        ],
        "hardlink-out": [{"path": "zz-hard", "type": "hardlink", "link": "../outside/escaped.txt",
                          "mode": 0o644, "mtime_ns": 0}],
    }[case]
    bad = _crafted(repo, sid, extra)
    with pytest.raises(PathEscape) as err:
        repo.restore(bad, str(target))
    assert "restore refused" in err.value.message
    assert _everything_under(target) == []
    assert _everything_under(outside) == []
    # the plan (what the flow previews) refuses it too, and so does export
    with pytest.raises(PathEscape):
        repo.plan_restore(bad, str(target))
    with pytest.raises(PathEscape):
        repo.export_tar(bad, str(tmp_path / "x.tar.gz"))
    assert not (tmp_path / "x.tar.gz").exists()


def test_existing_symlink_in_target_pointing_outside_is_refused(backed_up, tmp_path):
    repo, _, sid = backed_up
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "media")  # the snapshot has files under media/
    with pytest.raises(PathEscape, match="media"):
        repo.restore(sid, str(target))
    assert _everything_under(outside) == []


def test_existing_file_symlink_in_target_is_replaced_not_followed(backed_up, tmp_path):
    repo, tree, sid = backed_up
    outside = tmp_path / "victim.txt"
    outside.write_text("must stay")
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "with space.txt")
    repo.restore(sid, str(target), include=["with space.txt"])
    assert outside.read_text() == "must stay"
    assert not os.path.islink(target / "with space.txt")
    assert (target / "with space.txt").read_bytes() == (tree.root / "with space.txt").read_bytes()


def _damage(repo_root: Path, repo: Repository, cid: str) -> None:
    """Flip one bit of chunk ``cid`` in every pack that holds it."""
    for loc in repo.index.locations(cid):
        path = repo_root / pack_name(loc.pack)
        data = bytearray(path.read_bytes())
        data[loc.offset + loc.length // 2] ^= 0x40
        os.chmod(path, 0o644)
        path.write_bytes(bytes(data))


def _leftovers(root: Path) -> list[str]:
    return [p for p in _everything_under(root) if ".bf-restore-" in p]


def test_a_damaged_chunk_leaves_out_only_the_files_that_need_it(tmp_path):
    """issue 9: one damaged chunk stopped a restore and left multi-chunk files at full size with
    zero-filled holes. Now everything intact is restored, each file with damaged data is left
    out (one already in the target keeps its old content) and named, and nothing looks whole."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "small.bin").write_bytes(os.urandom(100_000))
    (src / "big.bin").write_bytes(os.urandom(9_000_000))           # 3 chunks at least (max 4 MiB)
    os.link(src / "big.bin", src / "d" / "big-link.bin")
    (src / "d" / "intact.txt").write_bytes(b"intact\n" * 1000)
    (src / "other.bin").write_bytes(os.urandom(2_000_000))
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    repo.backup(str(src))
    tree = {e["path"]: e for e in repo.snapshot("latest").tree}
    assert len(tree["big.bin"]["chunks"]) > 2
    _damage(root, repo, tree["small.bin"]["chunks"][0])
    _damage(root, repo, tree["big.bin"]["chunks"][1])
    out = tmp_path / "out"
    out.mkdir()
    (out / "small.bin").write_bytes(b"the copy the user already had")

    result = Repository.open(str(root)).restore("latest", str(out))

    assert sorted(result.not_restored) == ["big.bin", "d/big-link.bin", "small.bin"]
    assert "damaged" in result.not_restored["big.bin"]
    assert (out / "small.bin").read_bytes() == b"the copy the user already had"
    assert not (out / "big.bin").exists() and not (out / "d" / "big-link.bin").exists()
    assert (out / "d" / "intact.txt").read_bytes() == (src / "d" / "intact.txt").read_bytes()
    assert (out / "other.bin").read_bytes() == (src / "other.bin").read_bytes()
    assert result.files == 2 and _leftovers(out) == []
    assert result.to_dict()["not_restored"] == result.not_restored


def test_a_lost_pack_leaves_out_its_files_and_restores_the_rest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a" * 5000)
    root = tmp_path / "repo"
    repo = Repository.init(str(root))
    repo.backup(str(src))
    (src / "b.txt").write_bytes(b"b" * 5000)
    repo.backup(str(src))  # b.txt's chunk lands in a pack of its own
    cid = next(e for e in repo.snapshot("latest").tree if e["path"] == "b.txt")["chunks"][0]
    os.remove(root / pack_name(repo.index.locations(cid)[0].pack))
    reopened = Repository.open(str(root))
    result = reopened.restore("latest", str(tmp_path / "out"))
    assert list(result.not_restored) == ["b.txt"]
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"a" * 5000
    assert not (tmp_path / "out" / "b.txt").exists()


def test_sparse_files_keep_their_holes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.img", "wb") as f:
        f.write(b"head")
        f.seek(64 * 1024 * 1024)
        f.write(b"tail")
    repo = Repository.init(str(tmp_path / "repo"))
    repo.backup(str(src))
    out = tmp_path / "out"
    repo.restore("latest", str(out))
    st = os.stat(out / "sparse.img")
    assert (out / "sparse.img").read_bytes() == (src / "sparse.img").read_bytes()
    assert st.st_blocks * 512 < 8 * 1024 * 1024, f"{st.st_blocks * 512} bytes allocated for a 64 MiB sparse file"


def test_memory_repository_restores_too(tmp_path):
    tree = make_tree(tmp_path / "src", seed=5)
    repo = Repository.init(f"memory://{uuid.uuid4().hex}")
    repo.backup(str(tree.root))
    Repository.open(repo.url).restore("latest", str(tmp_path / "out"))
    assert_same_tree(tree.root, tmp_path / "out")


def test_a_killed_restore_leaves_no_file_looking_whole(tmp_path):
    """A file of several chunks is written under a temporary name and renamed when complete:
    SIGKILL in the middle leaves no file at its name with data missing."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    Repository.init(str(tmp_path / "repo")).backup(str(src))
    out = tmp_path / "out"
    code = ("import sys; from storage import Repository; "
            "Repository.open(sys.argv[1], {'download_limit': '1MiB/s'}).restore('latest', sys.argv[2])")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "repo"), str(out)])
    try:
        while child.poll() is None and not _leftovers(out):
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    if child.returncode == 0:  # finished before it could be killed: then it must be whole
        assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    else:
        assert _leftovers(out) and not (out / "big.bin").exists()
    Repository.open(str(tmp_path / "repo")).restore("latest", str(out))
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_a_restore_removes_what_killed_restores_on_this_host_left_in_its_folders(backed_up, tmp_path):
    repo, tree, sid = backed_up
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that is gone: its temporaries are provably abandoned
    target = tmp_path / "t"
    sub = next(p for p in sorted(tree.root.iterdir()) if p.is_dir() and not p.is_symlink() and any(
        f.is_file() and not f.is_symlink() for f in p.iterdir()))
    folder = target / sub.name
    folder.mkdir(parents=True)
    abandoned = folder / f".bf-restore-{HOST_TAG}-{dead.pid}-{'a' * 16}"
    live = folder / f".bf-restore-{HOST_TAG}-{os.getppid()}-{'b' * 16}"  # a restore still running
    other_host = folder / f".bf-restore-0badc0de-{dead.pid}-{'c' * 16}"  # not provably dead
    for path in (abandoned, live, other_host):
        path.write_bytes(b"half a file")
    repo.restore(sid, str(target))
    assert not abandoned.exists()
    assert live.exists() and other_host.exists()


def test_restore_progress_ends_at_every_file_and_byte(tmp_path):
    """The progress a restore reports (the CLI's bar) ends at all files and all bytes, files
    of one chunk and of several alike."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sizes = {"big.bin": 3_000_000, "sub/small.txt": 5_000, "sub/other.txt": 70_000, "empty": 0}
    for rel, size in sizes.items():
        (src / rel).write_bytes(os.urandom(size))
    repo = Repository.init(str(tmp_path / "repo"))
    snap = repo.backup(str(src))
    seen: list[tuple[int, int]] = []
    repo.restore(snap.snapshot_id, str(tmp_path / "out"), progress=lambda files, done: seen.append((files, done)))
    assert seen[-1] == (len(sizes), sum(sizes.values()))
    assert_same_tree(src, tmp_path / "out")


def test_a_low_open_file_limit_is_raised_so_a_tree_of_many_folders_restores(tmp_path):
    """With a soft limit of 64 open files (hard limit higher), a restore caches a quarter of
    the limit it finds: the repository raises the soft limit to the hard one when opened, as
    restic does, so a tree of 300 folders restores whole instead of running out of files."""
    resource = pytest.importorskip("resource")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("the hard open-file limit here is too low to raise the soft one meaningfully")
    src = tmp_path / "src"
    for i in range(300):
        (src / f"d{i:03}" / "sub").mkdir(parents=True)
        (src / f"d{i:03}" / "sub" / "f.txt").write_text(f"file {i}\n")
    Repository.init(str(tmp_path / "repo")).backup(str(src))
    code = ("import resource, sys; from storage import Repository; "
            "Repository.open(sys.argv[1]).restore('latest', sys.argv[2]); "
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "repo"), str(tmp_path / "out")],
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)))
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) > 64
    assert_same_tree(src, tmp_path / "out")
