"""Retention: which snapshots (or archives) a policy keeps, and why. Pure arithmetic, no I/O.

Vocabulary: a *candidate* is anything a policy may remove (a snapshot, an archive) with its
time, host, source, tags and the ids it *needs* (for a snapshot: what its chain must keep for
it to restore). A *group* is the candidates of one host and source (restic's default
``--group-by host,paths``); every count below is per group. A *decision* is keep or remove
with its *reasons*: the rules that kept it, or why none did.

The rules (restic's ``forget`` semantics; a candidate is kept when any rule keeps it):

- ``last N``: the N newest.
- ``hourly/daily/weekly/monthly/yearly N``: from the newest back, the newest candidate of each
  of the N latest hours/days/ISO weeks/months/years that have one. While a rule still has
  periods left when it reaches the oldest candidate, that one is kept too ("oldest"), so the
  history kept is as long as the rule allows. ``-1``: every period; ``0``: the rule is off.
- ``within D`` (``30d``, ``1y2m3d4h``): every candidate newer than the group's newest one
  (not counting any dated in the future) minus D. Measured from the newest, not from now, so a
  source that stopped backing up keeps its last history.
- ``tags``: each entry is a comma-separated tag list; a candidate with all the tags of any
  entry is kept.
- ``retention_days N``: every candidate newer than now minus N days; what no rule keeps and
  is older is removed. ``0`` protects nothing by age: the other rules alone decide (restic).
- ``minimum N`` (``keep_minimum_count``): the N newest of each group, whatever else says.
- Chains: a kept snapshot keeps everything it needs ("needed by <id>"), so nothing removed
  leaves a kept snapshot without its full or the earlier snapshots of its chain.

A policy without any keep rule and without ``retention_days`` is refused: ``minimum`` alone
is a floor, not a policy, and would otherwise remove all but the N newest.

Periods are those of the candidate's own recorded UTC offset (UTC for every snapshot
backupflow writes); ISO weeks start on Monday, and week 1 holds the year's first Thursday,
so 2020-12-31 and 2021-01-03 share week 2020-W53.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from storage.errors import InvalidInput

_DURATION = re.compile(r"(\d+)([ymdh])")

BUCKETS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


@dataclass(frozen=True)
class Duration:
    """A calendar span as restic writes it: ``1y2m3d4h`` (years, months, days, hours)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str, what: str = "--keep-within") -> "Duration":
        text = (text or "").strip()
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise InvalidInput(f"{what} takes a duration such as 30d or 1y2m3d4h (years, months, days, hours); "
                               f"{text!r} is not one.")
        got = {"y": 0, "m": 0, "d": 0, "h": 0}
        for number, unit in parts:
            got[unit] += int(number)
        if not any(got.values()):
            raise InvalidInput(f"{what} must be longer than zero; give a duration such as 30d.")
        return cls(got["y"], got["m"], got["d"], got["h"])

    def __str__(self) -> str:
        parts = (self.years, self.months, self.days, self.hours)
        return "".join(f"{n}{u}" for n, u in zip(parts, "ymdh", strict=True) if n)

    def before(self, t: datetime) -> datetime:
        """``t`` minus this span, normalising like Go's AddDate (March 31 minus 1m is March 3,
        or March 2 in a leap year), as restic does."""
        months = t.year * 12 + (t.month - 1) - self.years * 12 - self.months
        first = date(months // 12, months % 12 + 1, 1)
        day = first + timedelta(days=t.day - 1 - self.days)
        return t.replace(year=day.year, month=day.month, day=day.day) - timedelta(hours=self.hours)


@dataclass
class RetentionPolicy:
    """Plain data (it travels between Prefect tasks); see the module docstring for the rules."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str | None = None
    tags: list[str] = field(default_factory=list)
    retention_days: int | None = None
    minimum: int = 0

    def counts(self) -> dict[str, int]:
        return {"last": self.last, "hourly": self.hourly, "daily": self.daily, "weekly": self.weekly,
                "monthly": self.monthly, "yearly": self.yearly}

    def check(self) -> None:
        """Raise InvalidInput naming the first value a user must fix."""
        for name, n in self.counts().items():
            if n < -1:
                raise InvalidInput(f"--keep-{name} takes a count of 0 or more, or -1 for all; {n} is not one.")
        if self.within:
            Duration.parse(self.within)
        if any(not [t for t in tag.split(",") if t.strip()] for tag in self.tags):
            raise InvalidInput("--keep-tag takes a tag, or several separated by commas; an empty one keeps nothing.")
        if self.retention_days is not None and self.retention_days < 0:
            raise InvalidInput(f"retention_days must be 0 or more days; {self.retention_days} is not.")
        if self.minimum < 0:
            raise InvalidInput(f"keep_minimum_count must be 0 or more; {self.minimum} is not.")
        if self.empty():
            raise InvalidInput("No retention rule is set, so nothing would be kept but the minimum: pass --keep-last, "
                               "--keep-daily (...), --keep-within or --keep-tag, or set retention_days in [backup].")

    def empty(self) -> bool:
        return not (any(self.counts().values()) or self.within or self.tags or self.retention_days is not None)

    def describe(self) -> str:
        """One line: the rules in force, as a user set them."""
        rules = [f"--keep-{name} {'all' if n == -1 else n}" for name, n in self.counts().items() if n]
        rules += [f"--keep-within {self.within}"] if self.within else []
        rules += [f"--keep-tag {t}" for t in self.tags]
        rules += [f"retention_days {self.retention_days}"] if self.retention_days is not None else []
        rules += [f"keep_minimum_count {self.minimum}"] if self.minimum else []
        return ", ".join(rules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """What a policy decides on: a snapshot or an archive, as plain data."""

    id: str
    time: str                  # ISO 8601; without an offset it is UTC
    host: str
    source: str
    tags: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # ids that must stay while this one stays


@dataclass
class Decision:
    id: str
    time: str
    host: str
    source: str
    keep: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 time.") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class _GroupPass:
    """The rules over one group, newest first (restic's ApplyPolicy, plus retention_days and the
    minimum). ``reasons[i]`` collects why the i-th newest is kept."""

    def __init__(self, policy: RetentionPolicy, group: list[Candidate], now: datetime):
        self.policy = policy
        self.group = group
        self.times = [parse_time(c.time) for c in group]
        self.now = now
        self.reasons: list[list[str]] = [[] for _ in group]

    def run(self) -> list[list[str]]:
        self._tags()
        self._within()
        self._counts()
        self._age_and_minimum()
        return self.reasons

    def _tags(self) -> None:
        for i, cand in enumerate(self.group):
            for entry in self.policy.tags:
                wanted = {t.strip() for t in entry.split(",") if t.strip()}
                if wanted <= set(cand.tags):
                    self.reasons[i].append(f"--keep-tag {entry}")

    def _within(self) -> None:
        if not self.policy.within:
            return
        span = Duration.parse(self.policy.within)
        past = [t for t in self.times if t <= self.now]
        if not past:
            return  # every candidate is dated in the future: nothing to measure from
        start = span.before(max(past))
        for i, t in enumerate(self.times):
            if t > start:
                self.reasons[i].append(f"--keep-within {span}")

    def _counts(self) -> None:
        for name, count in self.policy.counts().items():
            if not count:
                continue
            bucket = BUCKETS.get(name)
            last: tuple[int, ...] | None = None
            left = count
            for i, t in enumerate(self.times):
                if left == 0:
                    break
                key = bucket(t) if bucket else (i,)
                oldest = i == len(self.times) - 1
                if key != last or oldest:
                    kept_already = key == last
                    self.reasons[i].append(f"--keep-{name}" + (" (oldest)" if kept_already else ""))
                    last = key
                    left = left - 1 if left > 0 else left

    def _age_and_minimum(self) -> None:
        days = self.policy.retention_days
        if days is not None:
            cutoff = self.now - timedelta(days=days)
            for i, t in enumerate(self.times):
                if t > cutoff:
                    self.reasons[i].append(f"retention_days {days}")
        for i in range(min(self.policy.minimum, len(self.group))):
            self.reasons[i].append(f"keep_minimum_count {self.policy.minimum}")


def _removed_reason(policy: RetentionPolicy, t: datetime, now: datetime) -> str:
    if policy.retention_days and t <= now - timedelta(days=policy.retention_days):
        return f"older than retention_days {policy.retention_days}"
    return "no rule keeps it"


def _keep_what_is_needed(decisions: dict[str, Decision], order: list[str], needs: dict[str, tuple[str, ...]]) -> None:
    """Close the keep set under ``needs``; newest needers first, so a reason names the newest."""
    work = [sid for sid in order if decisions[sid].keep]
    while work:
        sid = work.pop(0)
        for other in needs.get(sid, ()):
            dep = decisions.get(other)
            if dep is not None and not dep.keep:
                dep.keep, dep.reasons = True, [f"needed by {sid[:8]}"]
                work.append(other)


def apply_policy(candidates: Iterable[Candidate], policy: RetentionPolicy,
                 now: datetime | None = None) -> list[Decision]:
    """One decision per candidate, grouped by host and source, newest first in each group.

    Raises InvalidInput for a policy a user must fix (see RetentionPolicy.check)."""
    policy.check()
    now = now or datetime.now(timezone.utc)
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for cand in candidates:
        groups.setdefault((cand.host, cand.source), []).append(cand)
    decisions: dict[str, Decision] = {}
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda c: (parse_time(c.time), c.id), reverse=True)
        for cand, reasons in zip(group, _GroupPass(policy, group, now).run(), strict=True):
            keep = bool(reasons)
            decisions[cand.id] = Decision(cand.id, cand.time, cand.host, cand.source, keep,
                                          reasons if keep else [_removed_reason(policy, parse_time(cand.time), now)])
    order = list(decisions)
    _keep_what_is_needed(decisions, order, {c.id: c.needs for g in groups.values() for c in g})
    return [decisions[sid] for sid in order]
