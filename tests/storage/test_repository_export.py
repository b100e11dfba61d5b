"""Export: a snapshot as a standard .tar.gz that plain `tar -xzf` restores."""

from __future__ import annotations

import os
import subprocess
import tarfile
import uuid

import pytest

from storage import Repository
from storage.errors import IntegrityError, InvalidInput
from storage.objects import pack_name
from tests.treegen import assert_same_tree, fingerprint, make_tree


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    tree = make_tree(base / "src", seed=21)
    repo = Repository.init(f"memory://{uuid.uuid4().hex}")
    repo.backup(str(tree.root))
    out = base / "snap.tar.gz"
    result = repo.export_tar("latest", str(out))
    return repo, tree, out, result


def test_tar_xzf_gives_back_the_tree(exported, tmp_path):
    repo, tree, out, result = exported
    assert result.file == str(out) and result.files == len(tree.files) + 3  # three hard-link names
    dest = tmp_path / "x"
    dest.mkdir()
    proc = subprocess.run(["tar", "-xzf", str(out), "-C", str(dest)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # content, modes, symlink targets and hard links; tar keeps mtimes to the second
    assert_same_tree(tree.root, dest, mtimes=False)
    src_fp, got_fp = fingerprint(tree.root).entries, fingerprint(dest).entries
    for p, e in src_fp.items():
        if e[0] in ("file", "dir"):
            assert abs(got_fp[p][2] - e[2]) < 1_000_000_000, f"{p}: mtime {got_fp[p][2]} vs {e[2]}"


def test_archive_is_plain_tar_with_relative_names(exported):
    _, tree, out, _ = exported
    with tarfile.open(out, "r:gz") as tar:
        names = tar.getnames()
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    assert not any(n.startswith("/") or n.startswith("..") for n in names)
    assert "line\nbreak.txt" in names and "odd folder ü/-rf" in names and "empty-dir" in names
    assert links["link-dangling"] == "does/not/exist"


def test_export_of_selected_paths(exported, tmp_path):
    repo, tree, _, _ = exported
    out = tmp_path / "part.tar.gz"
    repo.export_tar("latest", str(out), include=["media"])
    with tarfile.open(out, "r:gz") as tar:
        names = set(tar.getnames())
        data = tar.extractfile("media/text-1.5MiB.txt").read()
    assert names == {"media", "media/random-2MiB.bin", "media/text-1.5MiB.txt", "media/same-as-random.bin"}
    assert data == (tree.root / "media/text-1.5MiB.txt").read_bytes()


def test_export_into_a_folder_is_refused(exported, tmp_path):
    repo, _, _, _ = exported
    with pytest.raises(InvalidInput, match="is a folder"):
        repo.export_tar("latest", str(tmp_path))


def test_damaged_chunk_fails_the_export_without_leaving_an_archive(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(50_000))
    repo = Repository.init(str(tmp_path / "repo"))
    repo.backup(str(src))
    cid, loc = next(iter(repo.index.items()))
    path = tmp_path / "repo" / pack_name(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset] ^= 1
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = tmp_path / "out.tar.gz"
    with pytest.raises(IntegrityError, match="f.bin"):
        Repository.open(str(tmp_path / "repo")).export_tar("latest", str(out))
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("out.tar.gz")]
    assert leftovers == [], f"a failed export left {leftovers} behind"
