"""The retention arithmetic on its own, over fixed calendars: several snapshots a day, gaps,
year ends and ISO weeks, tags, zero and unlimited counts, keep-within measured from the newest,
retention_days and keep_minimum_count, groups per host and source, and chains that keep what
a kept snapshot needs. Kinds of cases after restic's internal/restic/snapshot_policy_test.go."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from storage.errors import InvalidInput
from storage.repository.cleanup import snapshot_candidates
from storage.repository.retention import Candidate, Duration, RetentionPolicy, apply_policy
from storage.snapshots import Snapshot

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def cands(*times: str, source: str = "/src", host: str = "h", tags: dict[str, tuple[str, ...]] | None = None):
    """Candidates named by their time (id == time), so expectations read as calendars."""
    tags = tags or {}
    return [Candidate(t, t, host, source, tags.get(t, ())) for t in times]


def kept(decisions) -> list[str]:
    return [d.id for d in decisions if d.keep]


def why(decisions) -> dict[str, list[str]]:
    return {d.id: d.reasons for d in decisions}


# Four days with gaps and several snapshots a day (times in UTC).
DAYS = ["2026-01-01T08:00:00", "2026-01-01T12:00:00", "2026-01-01T20:00:00",
        "2026-01-02T09:00:00",
        "2026-01-05T07:00:00", "2026-01-05T23:59:59",
        "2026-01-20T10:00:00"]


def test_keep_daily_keeps_the_newest_of_each_day_that_has_a_snapshot_across_gaps():
    d = apply_policy(cands(*DAYS), RetentionPolicy(daily=3), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59", "2026-01-02T09:00:00"]
    assert [x.id for x in d] == sorted(DAYS, reverse=True)  # newest first, every snapshot decided
    assert why(d)["2026-01-05T23:59:59"] == ["--keep-daily"]
    assert why(d)["2026-01-05T07:00:00"] == ["no rule keeps it"]


def test_a_daily_rule_with_days_to_spare_also_keeps_the_oldest_snapshot():
    d = apply_policy(cands(*DAYS), RetentionPolicy(daily=10), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59", "2026-01-02T09:00:00",
                       "2026-01-01T20:00:00", "2026-01-01T08:00:00"]
    assert why(d)["2026-01-01T08:00:00"] == ["--keep-daily (oldest)"]


def test_keep_last_and_keep_daily_together_give_every_reason():
    d = apply_policy(cands(*DAYS), RetentionPolicy(last=2, daily=2), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59"]
    assert why(d)["2026-01-20T10:00:00"] == ["--keep-last", "--keep-daily"]
    d = apply_policy(cands(*DAYS), RetentionPolicy(last=3, daily=1), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59", "2026-01-05T07:00:00"]


def test_hourly_buckets_cross_midnight_and_the_minutes_of_one_hour_count_once():
    times = ["2026-03-01T22:05:00", "2026-03-01T23:10:00", "2026-03-01T23:50:00", "2026-03-02T00:01:00",
             "2026-03-02T00:59:00"]
    d = apply_policy(cands(*times), RetentionPolicy(hourly=3), NOW)
    assert kept(d) == ["2026-03-02T00:59:00", "2026-03-01T23:50:00", "2026-03-01T22:05:00"]


def test_iso_weeks_across_a_year_end_belong_to_the_year_of_their_thursday():
    # 2020-12-28 (Mon) .. 2021-01-03 (Sun) is 2020-W53; 2021-01-04 opens 2021-W01.
    times = ["2020-12-21T10:00:00", "2020-12-28T10:00:00", "2020-12-31T10:00:00", "2021-01-03T10:00:00",
             "2021-01-04T10:00:00"]
    d = apply_policy(cands(*times), RetentionPolicy(weekly=2), NOW)
    assert kept(d) == ["2021-01-04T10:00:00", "2021-01-03T10:00:00"]
    # 2019-12-30 (Mon) is already 2020-W01; 2019-12-29 (Sun) is 2019-W52.
    times = ["2019-12-29T10:00:00", "2019-12-30T10:00:00", "2020-01-05T10:00:00"]
    d = apply_policy(cands(*times), RetentionPolicy(weekly=2), NOW)
    assert kept(d) == ["2020-01-05T10:00:00", "2019-12-29T10:00:00"]


def test_year_and_month_ends_split_by_calendar_not_by_week():
    times = ["2019-11-30T10:00:00", "2020-12-31T23:59:00", "2021-01-01T00:00:00", "2021-01-31T10:00:00",
             "2021-02-01T10:00:00"]
    assert kept(apply_policy(cands(*times), RetentionPolicy(yearly=2), NOW)) == [
        "2021-02-01T10:00:00", "2020-12-31T23:59:00"]
    assert kept(apply_policy(cands(*times), RetentionPolicy(monthly=3), NOW)) == [
        "2021-02-01T10:00:00", "2021-01-31T10:00:00", "2020-12-31T23:59:00"]
    d = apply_policy(cands(*times), RetentionPolicy(yearly=5), NOW)  # 3 years < 5: the oldest is kept too
    assert kept(d) == ["2021-02-01T10:00:00", "2020-12-31T23:59:00", "2019-11-30T10:00:00"]
    assert why(d)["2019-11-30T10:00:00"] == ["--keep-yearly"]


def test_a_snapshot_is_bucketed_in_its_own_recorded_offset():
    # 23:30 UTC on Jan 1 is Jan 2 at +02:00: the two are different days in their own offsets.
    times = ["2026-01-01T23:30:00+00:00", "2026-01-02T01:45:00+02:00"]
    assert len(kept(apply_policy(cands(*times), RetentionPolicy(daily=2), NOW))) == 2


def test_unlimited_counts_keep_every_period_and_zero_counts_are_off():
    d = apply_policy(cands(*DAYS), RetentionPolicy(daily=-1), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59", "2026-01-02T09:00:00",
                       "2026-01-01T20:00:00", "2026-01-01T08:00:00"]
    assert kept(apply_policy(cands(*DAYS), RetentionPolicy(last=-1), NOW)) == sorted(DAYS, reverse=True)
    assert kept(apply_policy(cands(*DAYS), RetentionPolicy(last=1, daily=0, weekly=0), NOW)) == [
        "2026-01-20T10:00:00"]


def test_keep_tag_needs_every_tag_of_one_entry_and_entries_are_alternatives():
    tags = {DAYS[0]: ("foo",), DAYS[1]: ("foo", "bar"), DAYS[2]: ("bar",), DAYS[3]: ("baz",)}
    assert kept(apply_policy(cands(*DAYS, tags=tags), RetentionPolicy(tags=["foo"]), NOW)) == [DAYS[1], DAYS[0]]
    assert kept(apply_policy(cands(*DAYS, tags=tags), RetentionPolicy(tags=["foo,bar"]), NOW)) == [DAYS[1]]
    d = apply_policy(cands(*DAYS, tags=tags), RetentionPolicy(tags=["foo", "bar"]), NOW)
    assert kept(d) == [DAYS[2], DAYS[1], DAYS[0]]
    assert why(d)[DAYS[1]] == ["--keep-tag foo", "--keep-tag bar"]


def test_keep_within_is_measured_from_the_newest_snapshot_not_from_now():
    d = apply_policy(cands(*DAYS), RetentionPolicy(within="16d"), NOW)  # NOW is months later
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59", "2026-01-05T07:00:00"]
    assert why(d)["2026-01-05T07:00:00"] == ["--keep-within 16d"]
    # a snapshot dated in the future does not move the start of the window
    future = cands(*DAYS, "2027-06-01T00:00:00")
    assert "2026-01-05T07:00:00" in kept(apply_policy(future, RetentionPolicy(within="16d"), NOW))


def test_keep_within_with_months_follows_the_calendar():
    # March 31 minus one month normalises to March 3 (2026 is no leap year), as restic does.
    times = ["2026-02-28T10:00:00", "2026-03-02T10:00:00", "2026-03-04T10:00:00", "2026-03-31T10:00:00"]
    assert kept(apply_policy(cands(*times), RetentionPolicy(within="1m"), NOW)) == [
        "2026-03-31T10:00:00", "2026-03-04T10:00:00"]
    assert Duration.parse("1y2m3d4h").before(datetime(2016, 2, 29, 10)) == datetime(2014, 12, 26, 6)
    assert str(Duration.parse("2d1y")) == "1y2d"


def test_retention_days_removes_what_no_rule_keeps_and_is_older():
    times = ["2026-08-01T00:00:00", "2026-09-02T12:00:00", "2026-11-01T00:00:00", "2026-11-30T00:00:00"]
    d = apply_policy(cands(*times), RetentionPolicy(retention_days=90), NOW)  # cutoff 2026-09-02 12:00
    assert kept(d) == ["2026-11-30T00:00:00", "2026-11-01T00:00:00"]
    assert why(d)["2026-09-02T12:00:00"] == ["older than retention_days 90"]
    d = apply_policy(cands(*times), RetentionPolicy(retention_days=90, monthly=4), NOW)
    assert kept(d) == sorted(times, reverse=True)  # a rule keeps what retention_days would remove
    assert why(d)["2026-08-01T00:00:00"] == ["--keep-monthly"]


def test_retention_days_zero_leaves_the_decision_to_the_keep_rules():
    d = apply_policy(cands(*DAYS), RetentionPolicy(retention_days=0, daily=2), NOW)
    assert kept(d) == ["2026-01-20T10:00:00", "2026-01-05T23:59:59"]
    assert why(d)["2026-01-02T09:00:00"] == ["no rule keeps it"]


def test_keep_minimum_count_always_wins_and_counts_per_source():
    old = ["2020-01-01T00:00:00", "2020-01-02T00:00:00", "2020-01-03T00:00:00"]
    items = cands(*old, source="/a") + cands("2020-05-05T00:00:00", source="/b")
    d = apply_policy(items, RetentionPolicy(retention_days=30, minimum=2), NOW)
    assert kept(d) == ["2020-01-03T00:00:00", "2020-01-02T00:00:00", "2020-05-05T00:00:00"]
    assert why(d)["2020-05-05T00:00:00"] == ["keep_minimum_count 2"]
    d = apply_policy(items, RetentionPolicy(tags=["none"], minimum=1), NOW)
    assert kept(d) == ["2020-01-03T00:00:00", "2020-05-05T00:00:00"]


def test_groups_are_per_host_and_source():
    items = (cands("2026-01-01T00:00:00", "2026-01-02T00:00:00", host="a")
             + cands("2026-01-01T00:00:00+00:00", host="b"))
    d = apply_policy(items, RetentionPolicy(last=1), NOW)
    assert [(x.host, x.id, x.keep) for x in d] == [
        ("a", "2026-01-02T00:00:00", True), ("a", "2026-01-01T00:00:00", False),
        ("b", "2026-01-01T00:00:00+00:00", True)]


def _snap(sid: str, kind: str, chain: str, time: str, source: str = "/src") -> Snapshot:
    snap = Snapshot(type=kind, run="r", chain=chain, time=time, host="h", source=source)  # type: ignore[arg-type]
    snap.id = sid
    return snap


def test_a_kept_incremental_keeps_its_full_and_the_earlier_snapshots_of_its_chain():
    snaps = [_snap("full1", "full", "c1", "2026-01-01T00:00:00"),
             _snap("inc1", "incremental", "c1", "2026-01-02T00:00:00"),
             _snap("dif1", "differential", "c1", "2026-01-03T00:00:00"),
             _snap("inc2", "incremental", "c1", "2026-01-04T00:00:00"),
             _snap("full2", "full", "c2", "2026-01-05T00:00:00"),
             _snap("dif2", "differential", "c2", "2026-01-06T00:00:00"),
             _snap("dif3", "differential", "c2", "2026-01-07T00:00:00")]
    d = why(apply_policy(snapshot_candidates(snaps), RetentionPolicy(tags=["x"], daily=1), NOW))
    # a differential needs only its full: dif2 goes
    assert d["dif3"] == ["--keep-daily"] and d["full2"] == ["needed by dif3"] and d["dif2"] == ["no rule keeps it"]
    assert all(d[s] == ["no rule keeps it"] for s in ("full1", "inc1", "dif1", "inc2"))
    d = why(apply_policy(snapshot_candidates(snaps[:4]), RetentionPolicy(last=1), NOW))
    # an incremental reads every earlier snapshot of its chain
    assert d == {"inc2": ["--keep-last"], "dif1": ["needed by inc2"], "inc1": ["needed by inc2"],
                 "full1": ["needed by inc2"]}


def test_bad_policies_are_one_sentence_naming_what_to_fix():
    cases = [(RetentionPolicy(), "No retention rule"), (RetentionPolicy(minimum=5), "No retention rule"),
             (RetentionPolicy(daily=-2), "--keep-daily"), (RetentionPolicy(within="30x"), "--keep-within"),
             (RetentionPolicy(within="0d"), "longer than zero"), (RetentionPolicy(tags=[" , "]), "--keep-tag"),
             (RetentionPolicy(retention_days=-1), "retention_days")]
    for policy, words in cases:
        with pytest.raises(InvalidInput, match=words):
            apply_policy(cands(*DAYS), policy, NOW)


def _random_repo(rng: random.Random) -> list[Snapshot]:
    """Two sources, chains of random shapes, one to six snapshots a day at random gaps."""
    snaps, t = [], datetime(2024, 12, 20, tzinfo=timezone.utc)
    for n in range(rng.randint(5, 60)):
        t += timedelta(hours=rng.choice([1, 3, 7, 24, 24, 50, 24 * 9]))
        source = rng.choice(["/a", "/b"])
        chain = [s for s in snaps if s.source == source]
        kind = "full" if not chain or rng.random() < 0.15 else rng.choice(["incremental", "differential"])
        snaps.append(_snap(f"s{n:03d}", kind, f"{source}{n}" if kind == "full" else chain[-1].chain,
                           t.isoformat(), source))
    return snaps


@pytest.mark.parametrize("seed", range(40))
def test_on_random_calendars_nothing_kept_loses_what_it_needs_and_the_minimum_stays(seed):
    rng = random.Random(seed)
    snaps = _random_repo(rng)
    policy = RetentionPolicy(last=rng.choice([0, 1, 3]), daily=rng.choice([0, 2, 7]), weekly=rng.choice([0, 2]),
                             monthly=rng.choice([0, -1, 3]), retention_days=rng.choice([None, 400, 700]),
                             minimum=rng.choice([0, 2]), within=rng.choice([None, "10d"]), tags=["keep"])
    decisions = apply_policy(snapshot_candidates(snaps), policy, NOW)
    assert sorted(d.id for d in decisions) == sorted(s.id for s in snaps)
    keep = {d.id for d in decisions if d.keep}
    by_id = {s.id: s for s in snaps}
    for cand in snapshot_candidates(snaps):
        if cand.id in keep:
            assert set(cand.needs) <= keep, (cand.id, by_id[cand.id].type)
    for source in ("/a", "/b"):
        newest = sorted((s for s in snaps if s.source == source), key=lambda s: s.time, reverse=True)
        assert {s.id for s in newest[:policy.minimum]} <= keep
        if newest and (policy.last or policy.daily or policy.monthly):
            assert newest[0].id in keep  # a count rule always keeps the newest
    assert all(d.reasons for d in decisions)
