"""Trees that used to lose data silently or fail the backup: names that are not UTF-8, things
that cannot be read (an incomplete snapshot, named), a subtree deeper than PATH_MAX, and
sparse files (read around their holes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage import Repository
from storage.objects.codec import Codec

ROOT = str(Path(__file__).resolve().parents[2])


def _repo(tmp_path) -> Repository:
    return Repository.init(str(tmp_path / "repo"))


def test_names_that_are_not_utf8_back_up_restore_list_and_diff_exactly(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bsrc = os.fsencode(src)
    os.mkdir(bsrc + b"/dir\xfe")
    for name, data in ((b"/bad\xff", b"one"), (b"/dir\xfe/in\xe9side", b"two"), (b"/good.txt", b"three")):
        with open(bsrc + name, "wb") as f:
            f.write(data)
    os.symlink(b"bad\xff", bsrc + b"/link\xfa")
    os.mkfifo(bsrc + b"/fifo\xff")
    repo = _repo(tmp_path)
    first = repo.backup(str(src))
    assert first.stats["files"] == 3 and first.missing == []
    assert first.warnings == ["fifo\\xff is a FIFO; skipped"]  # shown readably, not as a surrogate

    out = tmp_path / "out"
    repo.restore(first.snapshot_id, str(out))
    bout = os.fsencode(out)
    assert sorted(os.listdir(bout)) == [b"bad\xff", b"dir\xfe", b"good.txt", b"link\xfa"]
    assert open(bout + b"/bad\xff", "rb").read() == b"one"
    assert open(bout + b"/dir\xfe/in\xe9side", "rb").read() == b"two"
    assert os.readlink(bout + b"/link\xfa") == b"bad\xff"

    listed = {os.fsencode(e["path"]) for e in repo.ls("latest")}
    assert {b"bad\xff", b"dir\xfe", b"dir\xfe/in\xe9side", b"good.txt", b"link\xfa"} == listed
    with open(bsrc + b"/bad\xff", "ab") as f:
        f.write(b" more")
    second = repo.backup(str(src))
    d = repo.diff(first.snapshot_id, second.snapshot_id)
    assert [os.fsencode(p) for p in d.modified] == [b"bad\xff"] and not d.added and not d.removed
    # The tree object stays valid UTF-8 JSON: the name is an escape any JSON reader accepts.
    tree = repo.backend.load(f"trees/{repo.snapshot(second.snapshot_id).tree_id}")
    raw = Codec.unpack_doc(tree)
    raw.decode("utf-8")
    assert b'"bad\\udcff"' in raw and json.loads(raw)
    assert repo.verify(read_data=True).ok


def without_read_override() -> list[str]:
    """The command prefix that makes permission errors real for this test: root reads
    everything, so as root the command runs without the capabilities that let it override
    file permissions (setpriv); as another user, as it is."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no way to make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def as_restricted(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*without_read_override(), sys.executable, "-c", script], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=300)


def make_unreadable_tree(base: Path) -> Path:
    src = base / "src"
    (src / "locked").mkdir(parents=True)
    (src / "open.txt").write_text("readable\n")
    (src / "secret.txt").write_text("not for nobody\n")
    (src / "locked" / "inside.txt").write_text("behind a closed door\n")
    os.chmod(src / "secret.txt", 0o000)
    os.chmod(src / "locked", 0o000)
    return src


def test_unreadable_file_and_directory_make_an_incomplete_snapshot_that_names_them(tmp_path):
    src = make_unreadable_tree(tmp_path)
    script = ("import json, sys\nfrom storage import Repository\n"
              f"r = Repository.open({str(tmp_path / 'repo')!r}, create=True)\n"
              f"print(json.dumps(r.backup({str(src)!r}).to_dict()))\n")
    proc = as_restricted(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert sorted(res["incomplete"], key=lambda m: m["path"]) == [
        {"path": "locked", "reason": "Permission denied"},
        {"path": "secret.txt", "reason": "Permission denied"},
    ]
    assert res["stats"]["missing"] == 2
    assert any("secret.txt could not be read (Permission denied)" in w for w in res["warnings"])
    repo = Repository.open(str(tmp_path / "repo"))
    snap = repo.snapshot("latest")
    assert {e["path"] for e in snap.tree} == {"open.txt", "locked"}  # what could be read is kept
    assert snap.stats["missing"] == 2


DEEP = "d" * 200


def make_deep_tree(src: Path, depth: int = 25, name: str = "deep.txt") -> None:
    """``depth`` folders of 200-character names below ``src`` (25: deeper than PATH_MAX, 4096),
    with the file ``name`` at the bottom."""
    fd = os.open(src, os.O_RDONLY)
    try:  # walk down by descriptor: the path itself grows past what open(2) accepts
        for _ in range(depth):
            os.mkdir(DEEP, dir_fd=fd)
            nfd = os.open(DEEP, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("deep\n")
    finally:
        os.close(fd)


def test_a_subtree_deeper_than_path_max_is_named_not_silently_left_out(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "top.txt").write_text("top\n")
    make_deep_tree(src)
    res = _repo(tmp_path).backup(str(src))
    assert len(res.missing) == 1
    [missing] = res.missing
    assert "PATH_MAX" in missing["reason"] and missing["path"].startswith(DEEP + "/" + DEEP)
    assert any("PATH_MAX" in w for w in res.warnings)
    assert res.stats["files"] == 1 and res.stats["missing"] == 1


def test_a_file_whose_folder_fits_in_path_max_but_whose_path_does_not_is_backed_up_and_restores(tmp_path):
    # Files are opened from their folder's descriptor (the reads never follow a symlink out of
    # the source), so only the folder's path must fit in PATH_MAX, as for the scan.
    src = tmp_path / "src"
    src.mkdir()
    depth = (4096 - len(str(src))) // 201  # the deepest folder still fits, a 220-character name does not
    name = "f" * 216 + ".txt"
    make_deep_tree(src, depth, name)
    assert len(str(src)) + depth * 201 < 4096 < len(str(src)) + depth * 201 + 1 + len(name)
    repo = _repo(tmp_path)
    res = repo.backup(str(src))
    assert res.missing == [] and res.warnings == []
    [entry] = [e for e in repo.snapshots.load(res.snapshot_id).tree if e["path"].endswith("/" + name)]
    out = tmp_path / "out"
    repo.restore(res.snapshot_id, str(out))
    fd = os.open(out, os.O_RDONLY)
    try:
        for part in entry["path"].split("/")[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        assert os.stat(name, dir_fd=fd).st_size == entry["size"] > 0
    finally:
        os.close(fd)


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_a_sparse_file_is_read_around_its_holes_and_restores_equal(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    size = 2 << 30
    path = src / "disk.img"
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in (0, 700 << 20, size - 5000):
            f.seek(offset)
            f.write(os.urandom(5000))
    st = os.stat(path)
    if st.st_blocks * 512 > 1 << 20:
        pytest.skip("this file system does not keep sparse files sparse")
    repo = _repo(tmp_path)
    before = _rchar()
    res = repo.backup(str(src))
    read = _rchar() - before
    # The holes were not read: the backup read a few MiB of a 2 GiB file ...
    assert read < 64 << 20, f"read {read} bytes"
    # ... and stored them as one chunk of zeros repeated, plus the data.
    entry = next(e for e in repo.snapshot(res.snapshot_id).tree if e["path"] == "disk.img")
    assert entry["size"] == size and res.stats["bytes_read"] == size
    assert len(set(entry["chunks"])) < 10 < len(entry["chunks"])
    assert res.stats["bytes_added"] < 20 << 20
    out = tmp_path / "out"
    repo.restore(res.snapshot_id, str(out))
    assert os.path.getsize(out / "disk.img") == size
    assert os.stat(out / "disk.img").st_blocks * 512 < 64 << 20  # the holes stay holes
    assert _sha256(out / "disk.img") == _sha256(path) == entry["sha256"]


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
