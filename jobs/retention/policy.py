"""Which backups a GFS policy keeps: a pure function of the backups, the policy and ``now``.

The semantics are restic's ``forget``, the reference users know. Per environment and
database, backups are sorted newest first. Each rule (``last``, ``hourly``, ``daily``,
``weekly`` by ISO week, ``monthly``, ``yearly``) keeps the newest backup of each period that
has backups until its count is used up; a rule with count left when it reaches the oldest
backup keeps that one too. ``within`` keeps every backup newer than the newest minus the
duration. A backup kept by any rule survives. Everything is computed in UTC.

On top of restic, three guards make deletion conservative: the newest backup and the
newest verified backup of a database are always kept, at least ``min_keep`` backups are
kept, and a backup dated in the future (a clock ahead of ours) is kept and not counted
by any rule, so that it cannot push real history out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby

from railyard.core.durations import Duration
from railyard.core.errors import PermanentError

# A backup dated later than now plus this is "from the future"; less is ordinary clock skew.
FUTURE_TOLERANCE = timedelta(minutes=5)

REASON_NEWEST = "newest"
REASON_VERIFIED = "newest verified"
REASON_MIN_KEEP = "min keep"
REASON_FUTURE = "future"


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 3
    hourly: int = 0
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    yearly: int = 0
    within: Duration | None = None
    min_keep: int = 1

    @property
    def is_empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and (self.within is None or self.within.is_zero)

    def describe(self) -> str:
        rules = [
            f"{name} {count}"
            for name, count in (
                ("last", self.last),
                ("hourly", self.hourly),
                ("daily", self.daily),
                ("weekly", self.weekly),
                ("monthly", self.monthly),
                ("yearly", self.yearly),
            )
            if count
        ]
        if self.within is not None and not self.within.is_zero:
            rules.append(f"within {self.within}")
        return ", ".join(rules) + f" (min keep {self.min_keep})"


@dataclass(frozen=True)
class BackupRecord:
    """What the planner needs to know about one backup; ``key`` is opaque to it."""

    id: str
    environment: str
    database: str
    taken_at: datetime
    key: str = ""
    verified: bool = False


@dataclass(frozen=True)
class Decision:
    backup: BackupRecord
    reasons: tuple[str, ...]  # empty: delete

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


def _hour(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H")


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _iso_week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


def _year(t: datetime) -> str:
    return t.strftime("%Y")


_Bucketer = Callable[[datetime], str]


def plan_retention(backups: Iterable[BackupRecord], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """Decide the fate of every backup, grouped by (environment, database), newest first in each group."""
    if policy.is_empty:
        raise PermanentError("the retention policy keeps nothing; set at least one BACKUP_KEEP_* variable above 0")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    def group_key(b: BackupRecord) -> tuple[str, str]:
        return (b.environment, b.database)

    ordered = sorted(backups, key=group_key)
    decisions: list[Decision] = []
    for _, group in groupby(ordered, key=group_key):
        decisions.extend(_plan_group(list(group), policy, now.astimezone(UTC)))
    return decisions


def _plan_group(group: list[BackupRecord], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    newest_first = sorted(group, key=lambda b: (b.taken_at.astimezone(UTC), b.id), reverse=True)
    reasons: list[list[str]] = [[] for _ in newest_first]
    ruled: list[int] = []  # positions in newest_first of the backups the rules apply to
    for position, backup in enumerate(newest_first):
        if backup.taken_at.astimezone(UTC) > now + FUTURE_TOLERANCE:
            reasons[position].append(REASON_FUTURE)
        else:
            ruled.append(position)

    _apply_rules([newest_first[p] for p in ruled], policy, [reasons[p] for p in ruled])

    if ruled and not reasons[ruled[0]]:
        reasons[ruled[0]].append(REASON_NEWEST)
    verified = next((p for p, b in enumerate(newest_first) if b.verified), None)
    if verified is not None and not reasons[verified]:
        reasons[verified].append(REASON_VERIFIED)
    kept = sum(1 for p in ruled if reasons[p])
    for p in ruled:
        if kept >= policy.min_keep:
            break
        if not reasons[p]:
            reasons[p].append(REASON_MIN_KEEP)
            kept += 1

    return [Decision(b, tuple(r)) for b, r in zip(newest_first, reasons, strict=True)]


def _apply_rules(ruled: list[BackupRecord], policy: RetentionPolicy, reasons: list[list[str]]) -> None:
    """restic's ApplyPolicy on a newest-first list with no future backups; appends to ``reasons``."""
    if not ruled:
        return
    rules: list[tuple[str, int, _Bucketer | None]] = [
        ("last", policy.last, None),
        ("hourly", policy.hourly, _hour),
        ("daily", policy.daily, _day),
        ("weekly", policy.weekly, _iso_week),
        ("monthly", policy.monthly, _month),
        ("yearly", policy.yearly, _year),
    ]
    left = [count for _, count, _ in rules]
    previous: list[str | None] = [None] * len(rules)
    within_cutoff = None
    if policy.within is not None and not policy.within.is_zero:
        within_cutoff = policy.within.before(ruled[0].taken_at.astimezone(UTC))
    oldest = len(ruled) - 1
    for index, backup in enumerate(ruled):
        taken_at = backup.taken_at.astimezone(UTC)
        if within_cutoff is not None and taken_at > within_cutoff:
            reasons[index].append(f"within {policy.within}")
        for i, (name, _, bucketer) in enumerate(rules):
            if left[i] <= 0:
                continue
            period = str(index) if bucketer is None else bucketer(taken_at)
            if period != previous[i] or index == oldest:
                label = name if bucketer is None else f"{name} {period}"
                if period == previous[i]:
                    label += " (oldest)"
                reasons[index].append(label)
                previous[i] = period
                left[i] -= 1
