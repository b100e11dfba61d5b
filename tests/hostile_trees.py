"""A generated corpus of hostile snapshot trees, and how each must end.

A hostile (or buggy) writer can store any JSON as a tree under a correct hash, so the hash
check does not protect a restore from these. Each ``Case`` is one such tree (built around one
real stored file, so its chunks exist) with the outcome a user must see: the error class and
its documented exit code and a fragment of the one sentence, or a restore that leaves out and
names the files it cannot write (exit 13 through the CLI). Nothing may ever be written outside
the target; a refused tree writes nothing at all.

``save`` stores a case as a snapshot of an existing repository; ``corpus`` lists the cases.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from storage import Repository
from storage.errors import BackupError, IntegrityError, PathEscape
from storage.objects import Codec

DEEP = 3000  # folders in the deep case: a path of 6,000 characters, past PATH_MAX


@dataclass
class Case:
    name: str
    tree: list | None = None          # entries (None: ``raw`` is stored as the tree object)
    raw: bytes = b""
    error: type[BackupError] | None = None
    says: str = ""                    # part of the one sentence
    not_restored: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()    # files that must be restored with the donor's content

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return 13 if self.not_restored else 0


@dataclass
class Kit:
    """Entry makers around one real file entry (``donor``) of a snapshot."""

    donor: dict
    outside: str
    extra: dict = field(default_factory=dict)

    def file(self, path: str, **over) -> dict:
        keep = {k: self.donor[k] for k in ("size", "chunks", "sha256", "mtime_ns")}
        return {**keep, "type": "file", "mode": 0o644, "path": path, **over}

    @staticmethod
    def dir(path: str, **over) -> dict:
        return {"type": "dir", "mode": 0o755, "mtime_ns": 1_600_000_000_000_000_000, "path": path, **over}

    @staticmethod
    def symlink(path: str, target: str) -> dict:
        return {"type": "symlink", "mode": 0o777, "mtime_ns": 0, "path": path, "target": target}

    @staticmethod
    def hardlink(path: str, link: str) -> dict:
        return {"type": "hardlink", "mode": 0o644, "mtime_ns": 0, "path": path, "link": link}


def _refused(name: str, tree: list, error: type[BackupError], says: str) -> Case:
    return Case(name, tree, error=error, says=says)


def corpus(k: Kit) -> list[Case]:
    ok = k.file("ok.txt")
    deep = "/".join(["d"] * DEEP)
    return [
        _refused("hardlink-to-missing", [ok, k.hardlink("c", "nothere")], IntegrityError,
                 "which is not in the snapshot"),
        _refused("file-and-dir-same-name", [ok, k.file("x"), k.dir("x")], IntegrityError, "listed twice"),
        _refused("duplicate-file", [ok, k.file("x"), k.file("x")], IntegrityError, "listed twice"),
        _refused("file-below-a-file", [ok, k.file("x"), k.file("x/y")], IntegrityError, "which is a file"),
        _refused("mode-rwx", [ok, k.file("a", mode="rwx")], IntegrityError, "mode 'rwx'"),
        _refused("mode-too-big", [ok, k.file("a", mode=0o1000000)], IntegrityError, "mode"),
        _refused("huge-mtime", [ok, k.file("a", mtime_ns=10 ** 30)], IntegrityError, "modification time"),
        _refused("mtime-true", [ok, k.file("a", mtime_ns=True)], IntegrityError, "modification time"),
        _refused("size-minus-5", [ok, k.file("a", size=-5)], IntegrityError, "size -5"),
        _refused("size-2^63", [ok, k.file("a", size=2 ** 63)], IntegrityError, f"size {2 ** 63}"),
        _refused("chunks-not-a-list", [ok, k.file("a", chunks="abc")], IntegrityError, "chunk list"),
        _refused("unknown-type", [ok, {**k.file("p"), "type": "fifo"}], IntegrityError, "unknown type 'fifo'"),
        _refused("no-type", [ok, {"path": "p", "mode": 0o644, "mtime_ns": 0}], IntegrityError, "unknown type None"),
        _refused("symlink-without-target", [ok, k.symlink("s", "")], IntegrityError, "without a usable target"),
        _refused("hardlink-to-a-dir", [ok, k.dir("d"), k.hardlink("c", "d")], IntegrityError, "is a dir, not a file"),
        # issue 9, second of the three restores: an entry of an unknown type below a symlink an
        # earlier restore left in the target, and a hard link to it
        _refused("issue-9-unknown-type-and-link", [ok, {**k.file("d/victim.txt"), "type": "whatever"},
                                                   k.hardlink("c", "d/victim.txt")], IntegrityError, "unknown type"),
        _refused("dotdot", [ok, k.file("../escaped.txt")], PathEscape, "outside the target"),
        _refused("dotdot-deep", [ok, k.file("a/../../escaped.txt")], PathEscape, "outside the target"),
        _refused("absolute", [ok, k.file(k.outside + "/escaped.txt")], PathEscape, "outside the target"),
        _refused("dot-component", [ok, k.file("a/./b")], PathEscape, "outside the target"),
        _refused("empty-path", [ok, k.file("")], PathEscape, "outside the target"),
        _refused("nul-in-path", [ok, k.file("a\x00b")], PathEscape, "outside the target"),
        _refused("symlink-then-file-through-it", [ok, k.symlink("s", k.outside), k.file("s/escaped.txt")],
                 PathEscape, "below the symlink"),
        _refused("hardlink-outside", [ok, k.hardlink("c", "../outside/escaped.txt")], PathEscape, "outside"),
        Case("invalid-json", raw=b'[{"path": "a", "type": ', error=IntegrityError, says="not valid JSON"),
        Case("tree-is-an-object", raw=b'{"path": "a"}', error=IntegrityError, says="not a list"),
        Case("entry-is-a-number", raw=b"[1]", error=IntegrityError, says="not a list"),
        Case("path-is-a-number", raw=json.dumps([{**ok, "path": 5}]).encode(), error=IntegrityError,
             says="not a list"),
        Case("claimed-10TB", [ok, k.file("big", size=10 * 2 ** 40)], not_restored=("big",), restored=("ok.txt",),
             says="the snapshot says 10995116277760 bytes"),
        Case("unknown-chunk", [ok, k.file("b", chunks=["0" * 64])], not_restored=("b",), restored=("ok.txt",),
             says="no longer in the repository"),
        Case("name-too-long", [ok, k.file("n" * 300)], not_restored=("n" * 300,), restored=("ok.txt",),
             says="could not be written"),
        Case("deep-3000", [ok] + [k.dir("/".join(["d"] * i)) for i in range(1, DEEP + 1)] + [k.file(deep + "/f")],
             restored=("ok.txt", deep + "/f")),
    ]


def save(repo: Repository, base_sid: str, case: Case) -> str:
    """Store ``case`` as a snapshot (a copy of ``base_sid``'s manifest with this tree)."""
    base = repo.snapshots.header(base_sid)
    if case.tree is not None:
        return repo.snapshots.save(replace(base, id="", tree=sorted(case.tree, key=lambda e: str(e.get("path")))))
    tree_id = hashlib.sha256(case.raw).hexdigest()
    repo.backend.save(f"trees/{tree_id}", Codec.pack_doc(case.raw))
    data = replace(base, id="", tree=None, tree_id=tree_id).to_bytes()
    sid = hashlib.sha256(data).hexdigest()
    repo.backend.save(f"snapshots/{sid}", Codec.pack_doc(data))
    return sid
