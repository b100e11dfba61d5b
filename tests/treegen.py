"""A seeded generator of awkward directory trees, and the comparison a restore must pass.

``make_tree`` writes random (partly compressible) content under odd names: spaces, quotes,
unicode, leading dashes, a newline; symlinks (relative, absolute, to a folder, dangling);
hard links (same folder and across folders); empty files and empty folders; deep nesting;
several modes; nanosecond mtimes on files and folders; optionally one file over 64 MiB.

``fingerprint`` records what a user would check after a restore (per path: type, mode,
mtime_ns, content sha256, symlink target; plus which paths are hard links of each other), so a
tree can be compared with a restore of an *older* snapshot after the tree has changed.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path

BIG_FILE = "big/over-64MiB.bin"
BIG_SIZE = 64 * 1024 * 1024 + 123_457  # over 64 MiB and not a multiple of any block size

WORDS = ("alpha", "beta", "gamma", "delta", "import", "return", "def", "class", "backup", "restore",
         "chunk", "pack", "index", "snapshot", "verify", "export", "über", "naïve", "日本", "😀")

ODD_NAMES = (
    "with space.txt",
    "  leading and trailing spaces  ",
    "-rf",
    "--help.txt",
    "it's \"quoted\".txt",
    "naïve café.md",
    "日本語のファイル.txt",
    "emoji 🎉 party.bin",
    "line\nbreak.txt",
    "back\\slash.txt",
    "semi;colon&amp$dollar.txt",
    "*star?.txt",
    "#hash%percent.txt",
    ".hidden",
)


def text(rng: random.Random, n: int) -> bytes:
    """About ``n`` bytes of compressible, source-like text."""
    out = []
    size = 0
    while size < n:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) + "\n"
        out.append(line)
        size += len(line.encode())
    return "".join(out).encode()[:n]


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


@dataclass
class Tree:
    root: Path
    seed: int
    files: list[str] = field(default_factory=list)  # regular files we wrote (relative paths)
    big: str | None = None


def make_tree(root: str | os.PathLike, seed: int = 1, big: bool = False, scale: int = 1) -> Tree:
    """Write an awkward tree under ``root`` (created). ``scale`` multiplies the number of plain files."""
    rng = random.Random(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tree = Tree(root, seed)

    def add(rel: str, data: bytes, mode: int = 0o644) -> None:
        write(root / rel, data, mode)
        tree.files.append(rel)

    # plain source-like files in nested folders
    for i in range(12 * scale):
        depth = rng.randint(0, 3) if i else 0  # file0.py at the top, for link-to-file
        folder = "/".join(f"dir{rng.randint(0, 3)}" for _ in range(depth))
        rel = f"{folder}/file{i}.py" if folder else f"file{i}.py"
        add(rel, text(rng, rng.randint(10, 40_000)))
    # odd names, in the root and in a folder with an odd name
    for name in ODD_NAMES:
        add(name, text(rng, rng.randint(1, 3000)))
        add(f"odd folder ü/{name}", rng.randbytes(rng.randint(1, 2000)))
    # multi-chunk files: incompressible and compressible, above the chunker's minimum
    add("media/random-2MiB.bin", rng.randbytes(2 * 1024 * 1024 + 17))
    add("media/text-1.5MiB.txt", text(rng, 1_500_000))
    add("media/same-as-random.bin", (root / "media/random-2MiB.bin").read_bytes())  # a duplicate
    # modes
    add("bin/run.sh", b"#!/bin/sh\necho hello\n", 0o755)
    add("secret/key.pem", rng.randbytes(64), 0o600)
    add("readonly.txt", b"do not touch\n", 0o444)
    add("setgid-ish.txt", b"odd mode\n", 0o750)
    # empty files and folders
    add("empty.txt", b"")
    add("deep/empty-too", b"")
    (root / "empty-dir").mkdir()
    (root / "nested/empty/a/b/c").mkdir(parents=True)
    (root / "private-dir").mkdir(mode=0o700)
    os.chmod(root / "private-dir", 0o700)
    add("private-dir/inside.txt", b"inside\n")
    # deep nesting
    add("a/b/c/d/e/f/g/h/i/j/deep.txt", b"deep\n")
    # symlinks: relative file, folder, absolute outside, dangling, to a symlink, odd name
    os.symlink("file0.py", root / "link-to-file")
    os.symlink("dir0" if (root / "dir0").exists() else "bin", root / "link-to-dir")
    os.symlink("/etc/hostname", root / "link-absolute")
    os.symlink("does/not/exist", root / "link-dangling")
    os.symlink("link-to-file", root / "link-to-link")
    os.symlink("../naïve café.md", root / "odd folder ü/-link with space ü")
    # hard links: same folder and across folders
    add("hard/original.txt", text(rng, 5000))
    os.link(root / "hard/original.txt", root / "hard/second name.txt")
    (root / "elsewhere").mkdir(exist_ok=True)
    os.link(root / "hard/original.txt", root / "elsewhere/third-ü.txt")
    add("hard/big-linked.bin", rng.randbytes(600_000))
    os.link(root / "hard/big-linked.bin", root / "hard/big-linked-2.bin")
    if big:
        _write_big(root / BIG_FILE, rng)
        tree.files.append(BIG_FILE)
        tree.big = BIG_FILE
    # distinct nanosecond mtimes on everything, folders last (writing inside changes them)
    base = 1_600_000_000_000_000_000
    for rel in sorted(tree.files):
        t = base + rng.randint(0, 10**17)
        os.utime(root / rel, ns=(t, t))
    for dirpath, dirnames, _ in sorted(os.walk(root), key=lambda w: -w[0].count(os.sep)):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                t = base + rng.randint(0, 10**17)
                os.utime(p, ns=(t, t))
    return tree


def _write_big(path: Path, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = BIG_SIZE
        while left:
            # all random: no chunk repeats, so deduplication cannot hide a restore bug
            piece = rng.randbytes(min(8 * 1024 * 1024, left))
            f.write(piece)
            left -= len(piece)


def mutate(tree: Tree, seed: int = 2) -> dict[str, list[str]]:
    """Change a few things the way a user would: edit, add, delete, re-mode. Returns what changed."""
    rng = random.Random(seed)
    root = tree.root
    changed = {"modified": [], "added": [], "removed": []}
    edited = "media/text-1.5MiB.txt"
    data = bytearray((root / edited).read_bytes())
    mid = len(data) // 2
    data[mid:mid] = b"-- an edit in the middle --"
    _rewrite(root / edited, bytes(data))
    changed["modified"].append(edited)
    _rewrite(root / "with space.txt", text(rng, 700))
    changed["modified"].append("with space.txt")
    write(root / "new folder/new file ü.txt", text(rng, 12_345))
    changed["added"] += ["new folder", "new folder/new file ü.txt"]
    os.remove(root / "-rf")
    changed["removed"].append("-rf")
    os.chmod(root / "bin/run.sh", 0o700)
    changed["modified"].append("bin/run.sh")
    return changed


def _rewrite(path: Path, data: bytes) -> None:
    st = path.stat()
    path.write_bytes(data)
    os.chmod(path, stat.S_IMODE(st.st_mode))


# --- comparison ------------------------------------------------------------------------------

def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * 1024 * 1024)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


@dataclass
class Fingerprint:
    entries: dict[str, tuple]
    hardlinks: set[frozenset[str]]


def fingerprint(root: str | os.PathLike, mtimes: bool = True, skip: set[str] | None = None) -> Fingerprint:
    """What a restore must reproduce, keyed by relative path (the root folder itself excluded)."""
    root = os.fspath(root)
    skip = skip or set()
    entries: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if rel in skip:
                continue
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            mt = st.st_mtime_ns if mtimes else None
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", oct(mode), mt)
            elif stat.S_ISREG(st.st_mode):
                entries[rel] = ("file", oct(mode), mt, st.st_size, _sha256(full))
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            else:
                entries[rel] = ("special", oct(mode))
        # os.walk lists symlinks to folders in dirnames but does not descend into them
    return Fingerprint(entries, {frozenset(v) for v in inodes.values() if len(v) > 1})


def diff_fingerprints(expected: Fingerprint, actual: Fingerprint, limit: int = 12) -> list[str]:
    problems = []
    for p in sorted(set(expected.entries) - set(actual.entries)):
        problems.append(f"missing after restore: {p!r} {expected.entries[p][:1]}")
    for p in sorted(set(actual.entries) - set(expected.entries)):
        problems.append(f"unexpected after restore: {p!r} {actual.entries[p][:1]}")
    for p in sorted(set(expected.entries) & set(actual.entries)):
        if expected.entries[p] != actual.entries[p]:
            problems.append(f"{p!r}: expected {expected.entries[p]}, got {actual.entries[p]}")
    if expected.hardlinks != actual.hardlinks:
        problems.append(f"hard-link groups differ: expected {sorted(map(sorted, expected.hardlinks))}, "
                        f"got {sorted(map(sorted, actual.hardlinks))}")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def assert_same_tree(expected, actual, mtimes: bool = True, skip: set[str] | None = None) -> None:
    """``expected``/``actual``: a folder or a :class:`Fingerprint`. Fails with a readable list."""
    exp = expected if isinstance(expected, Fingerprint) else fingerprint(expected, mtimes, skip)
    act = actual if isinstance(actual, Fingerprint) else fingerprint(actual, mtimes, skip)
    problems = diff_fingerprints(exp, act)
    assert not problems, "restored tree differs from the source:\n  " + "\n  ".join(problems)
