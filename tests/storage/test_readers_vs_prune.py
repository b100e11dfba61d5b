"""Readers and prune: verify tells "changed under me" from damage. A prune that reached the
repository without seeing the verify's lease (an older client, a host that judged the lease
stale) deletes packs while verify reads them: the verify looks again on a fresh view and
reports no false damage; real damage is still reported."""

from __future__ import annotations

import os

from storage import Repository
from storage.repository import prune as prune_mod
from tests.treegen import make_tree, mutate


def _repo(tmp_path):
    url = str(tmp_path / "repo")
    repo = Repository.init(url, pack_size_mib=1)
    tree = make_tree(tmp_path / "src", seed=31)
    for i in range(4):
        (tree.root / f"bulk{i}.bin").write_bytes(os.urandom(700_000))
    first = repo.backup(str(tree.root), type="full").snapshot_id
    mutate(tree, seed=4)
    for i in range(4):
        (tree.root / f"bulk{i}.bin").write_bytes(os.urandom(700_000))
    repo.backup(str(tree.root), type="full")
    return url, first


def test_verify_during_a_lease_blind_prune_rechecks_and_reports_no_damage(tmp_path):
    url, first = _repo(tmp_path)
    verifier = Repository.open(url)
    pruned = []

    def progress(packs: int, _bytes: int) -> None:
        if pruned:
            return
        other = Repository.open(url)  # forget the first chain and delete its packs, ignoring leases
        other.forget(other.plan_forget([first], chain=True))
        report = prune_mod.find_garbage(other, own_run="blind")
        prune_mod._sweep(other, report, "blind")
        pruned.append(report.packs_deleted)

    report = verifier.verify(read_data=True, progress=progress)
    assert pruned and pruned[0] > 0, "the prune deleted nothing: the race was not exercised"
    assert report.ok, report.problems
    assert report.snapshots == 1 and report.rechecks == 1


def test_real_damage_is_still_reported(tmp_path):
    url, _ = _repo(tmp_path)
    pack = sorted(p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())[0]
    data = bytearray(pack.read_bytes())
    data[10] ^= 0xFF
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    report = Repository.open(url).verify(read_data=True)
    assert not report.ok and pack.name in report.damaged_packs
    assert report.rechecks == 0  # nothing changed while it ran: damage is reported at once
