"""A seeded developer workspace for the side-by-side benchmarks, and a seeded mutation of it.

The tree imitates what people actually back up: tens of thousands of small source files that
zstd compresses 3-5x (code-like lines from a vocabulary with random identifiers and numbers,
not one line repeated), a few hundred medium files (logs, data dumps, semi-compressible
binaries), a handful of large incompressible blobs (one of 100-200 MiB), some duplicated
files, a few empty files, empty directories and relative symlinks, nested a few levels deep.

Same seed and scale, same bytes: the generator draws everything from one `random.Random`.
Speed matters more than beauty here (1 GiB in well under a minute on two cores), so lines are
drawn with `random.choices` from per-language pools that are themselves generated from
templates, with a share of freshly generated lines in every file so no two files are alike.

    python -m bench.dataset generate DIR --seed 1 [--scale 1.0]
    python -m bench.dataset mutate DIR --seed 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
KiB = 1 << 10

# Full-scale shape (scale 1.0): about 20,000 files and 1 GiB.
SMALL_FILES = 19_300
MEDIUM_FILES = 300
LARGE_MIB = (160, 90, 60, 40, 30)  # the large incompressible blobs
DUPLICATE_SHARE = 0.02  # of small files, copied elsewhere in the tree
MUTATE_SHARE = 0.02

SYLLABLES = (
    "ab ac ad al am an ar as at ba be bi bo ca ce ci co da de di do el em en er es et fa fe fi "
    "fo ga ge gi go ha he hi ho id il im in io ir is it ka ke ki la le li lo lu ma me mi mo mu "
    "na ne ni no nu ob od of ol om on op or os ot pa pe pi po pu ra re ri ro ru sa se si so su "
    "ta te ti to tu ul um un ur us ut va ve vi vo xa xe ya yo za ze zi zo"
).split()
WORDS = (
    "the a of to and in is for that with on as by this be are from it at an or not which if "
    "when we return value list cache request response buffer index chunk pack file path user "
    "error retry timeout config default option count size offset length state result handler "
    "parse load save read write open close update create delete check verify build run test"
).split()
EXTENSIONS = {"py": 0.35, "js": 0.2, "go": 0.15, "c": 0.1, "md": 0.08, "json": 0.07, "yaml": 0.05}


@dataclass
class Counts:
    files: int = 0
    bytes: int = 0


class TextSource:
    """Code-like text: per-language line pools plus freshly generated lines."""

    def __init__(self, rng: random.Random, pool_lines: int):
        self.rng = rng
        self.idents = [self._ident() for _ in range(6000)]
        self.pools = {lang: [self.line(lang) for _ in range(pool_lines)] for lang in EXTENSIONS}

    def _ident(self) -> str:
        rng = self.rng
        parts = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
        return "_".join(parts) if rng.random() < 0.6 else parts[0] + "".join(p.title() for p in parts[1:])

    def line(self, lang: str) -> str:
        rng, ids = self.rng, self.idents
        # Names follow a rough Zipf law (a few hundred common ones, a long tail) and most numbers
        # are small, as in real code; this is what lands zstd at about 3-4x on small files.
        a, b, c = (ids[int(len(ids) ** rng.random()) - 1] for _ in range(3))
        n = rng.randint(0, 10 ** rng.choice((1, 1, 2, 2, 3, 4, 6, 9)))
        ind = " " * (4 * rng.randint(0, 3))
        k = rng.randint(0, 9)
        if lang == "md":
            return " ".join(rng.choices(WORDS, k=rng.randint(4, 14))) + f" `{a}` {n}."
        if lang == "json":
            return f'{ind}"{a}": {{"{b}": {n}, "{c}": "{rng.getrandbits(48):012x}"}},'
        if lang == "yaml":
            return f"{ind}{a}: {b if k < 5 else n}"
        if k == 0:
            return f"{ind}# " + " ".join(rng.choices(WORDS, k=rng.randint(3, 10)))
        if lang == "py":
            forms = (f"{ind}{a} = {b}({c}, {n})", f"{ind}def {a}(self, {b}, {c}={n}):",
                     f"{ind}if {a}.{b} > {n}:", f"{ind}return {a}[{n}] + {b}", f"from {a}.{b} import {c}",
                     f"{ind}for {a} in {b}.{c}():", f"{ind}raise {a.title()}Error(\"{b} {n}\")",
                     f"{ind}self.{a} = {b}.get(\"{c}\", {n})", f"{ind}{a}.append(({b}, {n}))")
        elif lang == "js":
            forms = (f"{ind}const {a} = {b}.{c}({n});", f"{ind}function {a}({b}, {c}) {{",
                     f"{ind}if ({a} === {n}) {{ return {b}; }}", f"import {{ {a} }} from './{b}';",
                     f"{ind}{a}.{b} = await {c}({n});", f"{ind}}}", f"{ind}let {a} = [{n}, {b}];",
                     f"{ind}export default {a};", f"{ind}{a}.forEach(({b}) => {c}({b}, {n}));")
        elif lang == "go":
            forms = (f"{ind}{a} := {b}.{c}({n})", f"func ({a} *{b.title()}) {c.title()}() error {{",
                     f"{ind}if err != nil {{ return fmt.Errorf(\"{a}: %w\", err) }}", f"{ind}}}",
                     f"{ind}var {a} = map[string]int{{\"{b}\": {n}}}", f"{ind}for _, {a} := range {b} {{",
                     f"{ind}return {a}, nil", f"type {a.title()} struct {{ {b} int64 }}")
        else:
            forms = (f"{ind}int {a} = {b}({c}, {n});", f"static int {a}(struct {b} *{c}) {{",
                     f"{ind}if ({a} > {n}) goto {b};", f"{ind}}}", f"#include \"{a}.h\"",
                     f"{ind}memcpy({a}, {b}, {n});", f"#define {a.upper()} {n}", f"{ind}return {a}->{b};")
        return forms[k % len(forms)]

    def text(self, lang: str, size: int, fresh: float = 0.12) -> bytes:
        """About `size` bytes of text in `lang`; `fresh` is the share of never-seen lines."""
        rng, pool = self.rng, self.pools[lang]
        lines = rng.choices(pool, k=max(1, size // 40 + 1))
        for i in range(0, len(lines), max(1, int(1 / fresh))):
            lines[i] = self.line(lang)
        data = ("\n".join(lines) + "\n").encode()
        return data[:size] if len(data) > size else data


def _semi_binary(rng: random.Random, size: int) -> bytes:
    """Object-file-like bytes: random blocks mixed with low-entropy ones (~1.5x with zstd)."""
    out, alphabet = bytearray(), bytes(range(0, 256, 17))
    while len(out) < size:
        n = rng.randint(512, 8192)
        out += rng.randbytes(n) if rng.random() < 0.45 else bytes(rng.choices(alphabet, k=n))
    return bytes(out[:size])


def _small_size(rng: random.Random) -> int:
    return min(100 * KiB, int(rng.lognormvariate(8.8, 1.1)))  # median ~6.6 KiB, mean ~12 KiB


def _write(path: Path, data: bytes, counts: Counts) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    counts.files += 1
    counts.bytes += len(data)


def _dir_names(rng: random.Random, src: TextSource, n_dirs: int) -> list[Path]:
    """Nested project directories, 2-6 levels deep."""
    tops = [f"project_{src.idents[i]}" for i in range(max(2, n_dirs // 120))]
    kinds = ("src", "lib", "pkg", "internal", "tests", "docs", "scripts", "vendor")
    dirs: list[Path] = []
    while len(dirs) < n_dirs:
        parts = [rng.choice(tops), rng.choice(kinds)] + [rng.choice(src.idents) for _ in range(rng.randint(0, 4))]
        dirs.append(Path(*parts))
    return dirs


def generate(root: str | os.PathLike, seed: int = 1, scale: float = 1.0) -> dict:
    """Write the workspace under `root` (created; must be empty or absent). Returns a summary."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise SystemExit(f"{root} is not empty; generate into a new directory.")
    rng = random.Random(seed)
    src = TextSource(rng, pool_lines=max(500, int(20_000 * min(1.0, scale * 4))))
    counts = Counts()
    n_small = max(40, int(SMALL_FILES * scale))
    dirs = _dir_names(rng, src, max(8, n_small // 18))
    langs, weights = list(EXTENSIONS), list(EXTENSIONS.values())
    small: list[Path] = []
    for i in range(n_small):
        lang = rng.choices(langs, weights)[0]
        path = root / rng.choice(dirs) / f"{rng.choice(src.idents)}_{i}.{lang}"
        _write(path, src.text(lang, _small_size(rng)), counts)
        small.append(path)
    for i in range(max(4, int(MEDIUM_FILES * scale))):
        size = int(100 * KiB * (50 ** rng.random()))  # log-uniform 100 KiB - 5 MiB
        d = root / rng.choice(dirs)
        kind = rng.random()
        if kind < 0.35:
            _write(d / f"server_{i}.log", src.text("md", size, fresh=0.3), counts)
        elif kind < 0.6:
            _write(d / f"fixtures_{i}.json", src.text("json", size, fresh=0.3), counts)
        else:
            _write(d / f"build_{i}.o", _semi_binary(rng, size), counts)
    for i, mib in enumerate(LARGE_MIB):
        size = max(64 * KiB, int(mib * MiB * scale))
        _write(root / "assets" / f"blob_{i}.bin", rng.randbytes(size), counts)
    # Duplicates: vendored copies of small files, and one copy of a large blob.
    for i, orig in enumerate(rng.sample(small, max(2, int(len(small) * DUPLICATE_SHARE)))):
        _write(root / "vendor_copy" / f"{i}_{orig.name}", orig.read_bytes(), counts)
    _write(root / "backup_of_assets" / "blob_4.bin", (root / "assets" / "blob_4.bin").read_bytes(), counts)
    for i in range(max(2, int(30 * scale))):
        _write(root / rng.choice(dirs) / f"__init__{i}.py", b"", counts)
        (root / rng.choice(dirs) / f"empty_dir_{i}").mkdir(parents=True, exist_ok=True)
        link = root / "links" / f"link_{i}"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(rng.choice(small), link.parent), link)
    return {"files": counts.files, "bytes": counts.bytes, "seed": seed, "scale": scale}


def list_files(root: str | os.PathLike) -> list[Path]:
    """Regular files under root, sorted, so a mutation is a function of the seed alone."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if not p.is_symlink():
                out.append(p)
    return out


def mutate(root: str | os.PathLike, seed: int = 2, share: float = MUTATE_SHARE) -> dict:
    """Touch about `share` of the files: edits, appends, new files, deletes, large-file edits."""
    root = Path(root)
    rng = random.Random(seed)
    src = TextSource(rng, pool_lines=2000)
    files = list_files(root)
    large = [p for p in files if p.stat().st_size >= 8 * MiB] or sorted(files, key=lambda p: -p.stat().st_size)[:2]
    others = [p for p in files if p not in set(large)]
    touched = rng.sample(others, max(4, int(len(files) * share)))
    done = {"edited": 0, "appended": 0, "deleted": 0, "created": 0, "large_edited": 0}
    for p in touched:
        r = rng.random()
        if r < 0.5:  # edit in the middle: replace a run of bytes with new text of another length
            data = p.read_bytes()
            at = rng.randint(0, len(data))
            p.write_bytes(data[:at] + src.text("py", rng.randint(20, 2000)) + data[at + rng.randint(0, 500):])
            done["edited"] += 1
        elif r < 0.8:
            with open(p, "ab") as f:
                f.write(src.text("py", rng.randint(50, 4000)))
            done["appended"] += 1
        else:
            p.unlink()
            done["deleted"] += 1
    new_dir = root / "new_work" / f"seed_{seed}"
    for i in range(max(2, len(touched) // 4)):
        _write(new_dir / f"added_{i}.py", src.text("py", _small_size(rng)), Counts())
        done["created"] += 1
    for p in rng.sample(large, min(2, len(large))):  # in-place edits deep inside large blobs
        size = p.stat().st_size
        with open(p, "r+b") as f:
            for _ in range(3):
                f.seek(rng.randint(0, max(0, size - 8192)))
                f.write(rng.randbytes(rng.randint(100, 8192)))
        done["large_edited"] += 1
    done["touched"] = sum(done.values())
    done["files_before"] = len(files)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a new workspace into DIR")
    g.add_argument("dir")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--scale", type=float, default=1.0)
    m = sub.add_parser("mutate", help="touch about 2%% of the files in DIR")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "generate":
        result = generate(args.dir, args.seed, args.scale)
    else:
        result = mutate(args.dir, args.seed)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
