"""The GFS planner against hand-computed expectations (restic ``forget`` semantics plus Railyard's guards)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.retention.policy import BackupRecord, RetentionPolicy, plan_retention
from railyard.core.durations import Duration
from railyard.core.errors import PermanentError

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
ONLY = {"last": 0, "hourly": 0, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}


def at(text: str) -> datetime:
    """'2026-11-20 03:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record(text: str, database: str = "app", environment: str = "production", verified: bool = False) -> BackupRecord:
    taken_at = at(text)
    return BackupRecord(
        id=f"{database}-{taken_at:%Y%m%dT%H%M%SZ}",
        environment=environment,
        database=database,
        taken_at=taken_at,
        key=f"backups/{environment}/{database}/{taken_at:%Y/%m/%d}/{database}-{taken_at:%Y%m%dT%H%M%SZ}.dump.zst",
        verified=verified,
    )


def policy(**rules: object) -> RetentionPolicy:
    return RetentionPolicy(**{**ONLY, **rules})  # type: ignore[arg-type]


def fates(times: list[str], pol: RetentionPolicy, now: datetime = NOW) -> dict[str, tuple[str, ...]]:
    """Planner output as {time: reasons}; an empty tuple means delete."""
    decisions = plan_retention([record(t) for t in times], pol, now)
    return {d.backup.taken_at.strftime("%Y-%m-%d %H:%M"): d.reasons for d in decisions}


CASES = [
    pytest.param(
        ["2026-11-20 03:00", "2026-11-19 03:00", "2026-11-17 03:00", "2026-11-14 03:00", "2026-11-13 03:00"],
        policy(daily=3),
        {
            "2026-11-20 03:00": ("daily 2026-11-20",),
            "2026-11-19 03:00": ("daily 2026-11-19",),
            "2026-11-17 03:00": ("daily 2026-11-17",),  # a day without backups does not use up a slot
            "2026-11-14 03:00": (),
            "2026-11-13 03:00": (),
        },
        id="daily-with-gaps",
    ),
    pytest.param(
        ["2026-11-20 21:00", "2026-11-20 09:00", "2026-11-19 21:00", "2026-11-19 09:00", "2026-11-18 21:00"],
        policy(daily=2),
        {
            "2026-11-20 21:00": ("daily 2026-11-20",),
            "2026-11-20 09:00": (),
            "2026-11-19 21:00": ("daily 2026-11-19",),
            "2026-11-19 09:00": (),
            "2026-11-18 21:00": (),
        },
        id="several-a-day-keeps-newest-of-each-day",
    ),
    pytest.param(
        ["2026-11-20 21:00", "2026-11-20 09:00", "2026-11-19 21:00", "2026-11-19 09:00"],
        policy(daily=5),
        {
            "2026-11-20 21:00": ("daily 2026-11-20",),
            "2026-11-20 09:00": (),
            "2026-11-19 21:00": ("daily 2026-11-19",),
            "2026-11-19 09:00": ("daily 2026-11-19 (oldest)",),  # count left at the oldest backup
        },
        id="oldest-kept-while-count-left",
    ),
    pytest.param(
        ["2026-11-20 10:30", "2026-11-20 10:10", "2026-11-20 09:50", "2026-11-20 08:05"],
        policy(last=2, hourly=2),
        {
            "2026-11-20 10:30": ("last", "hourly 2026-11-20T10"),
            "2026-11-20 10:10": ("last",),
            "2026-11-20 09:50": ("hourly 2026-11-20T09",),
            "2026-11-20 08:05": (),
        },
        id="last-and-hourly",
    ),
    pytest.param(
        [
            "2021-01-05 12:00",
            "2021-01-03 12:00",
            "2021-01-01 12:00",
            "2020-12-28 12:00",
            "2020-12-27 12:00",
            "2020-12-20 12:00",
        ],
        policy(weekly=3, yearly=2),
        {
            "2021-01-05 12:00": ("weekly 2021-W01", "yearly 2021"),
            "2021-01-03 12:00": ("weekly 2020-W53",),  # 2021-01-03 belongs to ISO week 53 of 2020
            "2021-01-01 12:00": (),
            "2020-12-28 12:00": ("yearly 2020",),
            "2020-12-27 12:00": ("weekly 2020-W52",),
            "2020-12-20 12:00": (),
        },
        id="iso-week-53-and-year-boundary",
    ),
    pytest.param(
        ["2025-01-02 12:00", "2024-12-30 12:00", "2024-12-29 12:00", "2024-12-15 12:00"],
        policy(weekly=2, monthly=2),
        {
            "2025-01-02 12:00": ("weekly 2025-W01", "monthly 2025-01"),
            "2024-12-30 12:00": ("monthly 2024-12",),  # ISO week 2025-W01, calendar month 2024-12
            "2024-12-29 12:00": ("weekly 2024-W52",),
            "2024-12-15 12:00": (),
        },
        id="iso-week-year-differs-from-calendar-year",
    ),
    pytest.param(
        ["2026-11-20 12:00", "2026-11-19 13:00", "2026-11-18 12:00", "2026-11-18 11:00", "2026-11-10 12:00"],
        policy(last=1, within=Duration(days=2)),
        {
            "2026-11-20 12:00": ("within 2d", "last"),
            "2026-11-19 13:00": ("within 2d",),
            "2026-11-18 12:00": (),  # exactly newest - 2d is not newer than it
            "2026-11-18 11:00": (),
            "2026-11-10 12:00": (),
        },
        id="within-is-relative-to-newest-and-strict",
    ),
    pytest.param(
        ["2026-03-31 10:00", "2026-02-28 11:00", "2026-02-28 09:00"],
        policy(within=Duration(months=1)),
        {
            "2026-03-31 10:00": ("within 1mo",),
            "2026-02-28 11:00": ("within 1mo",),  # one month before March 31 is February 28
            "2026-02-28 09:00": (),
        },
        id="within-calendar-month",
    ),
    pytest.param(
        ["2099-01-01 00:00", "2026-11-20 23:03", "2026-11-19 12:00", "2026-11-18 12:00"],
        policy(last=2, within=Duration(days=1)),
        {
            "2099-01-01 00:00": ("future",),  # kept, and pushes nothing out
            "2026-11-20 23:03": ("within 1d", "last"),  # 3 minutes ahead is ordinary clock skew
            "2026-11-19 12:00": ("last",),
            "2026-11-18 12:00": (),
        },
        id="future-timestamps",
    ),
    pytest.param(
        ["2026-11-20 03:00", "2026-11-19 03:00", "2026-11-18 03:00", "2026-11-17 03:00", "2026-11-16 03:00"],
        policy(last=1, min_keep=3),
        {
            "2026-11-20 03:00": ("last",),
            "2026-11-19 03:00": ("min keep",),
            "2026-11-18 03:00": ("min keep",),
            "2026-11-17 03:00": (),
            "2026-11-16 03:00": (),
        },
        id="minimum-keep",
    ),
    pytest.param(
        ["2026-11-20 03:00", "2026-11-19 03:00"],
        policy(last=1, min_keep=5),
        {"2026-11-20 03:00": ("last",), "2026-11-19 03:00": ("min keep",)},
        id="minimum-keep-above-count-keeps-all",
    ),
    pytest.param(
        [
            "2026-11-20 22:00",
            "2026-11-20 21:30",
            "2026-11-20 10:00",
            "2026-11-19 23:00",
            "2026-11-16 12:00",
            "2026-11-02 12:00",
            "2026-10-15 12:00",
            "2025-12-31 12:00",
            "2024-06-01 12:00",
        ],
        policy(last=1, hourly=2, daily=2, weekly=2, monthly=2, yearly=2, within=Duration(days=1)),
        {
            "2026-11-20 22:00": (
                "within 1d",
                "last",
                "hourly 2026-11-20T22",
                "daily 2026-11-20",
                "weekly 2026-W47",
                "monthly 2026-11",
                "yearly 2026",
            ),
            "2026-11-20 21:30": ("within 1d", "hourly 2026-11-20T21"),
            "2026-11-20 10:00": ("within 1d",),
            "2026-11-19 23:00": ("within 1d", "daily 2026-11-19"),
            "2026-11-16 12:00": (),
            "2026-11-02 12:00": ("weekly 2026-W45",),
            "2026-10-15 12:00": ("monthly 2026-10",),
            "2025-12-31 12:00": ("yearly 2025",),
            "2024-06-01 12:00": (),  # every count used up before the oldest
        },
        id="all-rules-combined",
    ),
    pytest.param([], policy(last=1), {}, id="no-backups"),
]


@pytest.mark.parametrize(("times", "pol", "expected"), CASES)
def test_plan_matches_hand_computed_fates(times: list[str], pol: RetentionPolicy, expected: dict) -> None:
    assert expected == fates(times, pol)


def test_default_policy_over_eighty_daily_backups() -> None:
    """last 3, daily 7, weekly 4, monthly 12 over 2026-09-01..2026-11-20 at 03:00 plus one at 15:00 on the 20th."""
    days = [date(2026, 9, 1) + timedelta(days=n) for n in range(81)]
    times = [f"{d} 03:00" for d in days] + ["2026-11-20 15:00"]
    expected = {
        "2026-11-20 15:00": ("last", "daily 2026-11-20", "weekly 2026-W47", "monthly 2026-11"),
        "2026-11-20 03:00": ("last",),
        "2026-11-19 03:00": ("last", "daily 2026-11-19"),
        "2026-11-18 03:00": ("daily 2026-11-18",),
        "2026-11-17 03:00": ("daily 2026-11-17",),
        "2026-11-16 03:00": ("daily 2026-11-16",),
        "2026-11-15 03:00": ("daily 2026-11-15", "weekly 2026-W46"),
        "2026-11-14 03:00": ("daily 2026-11-14",),
        "2026-11-08 03:00": ("weekly 2026-W45",),
        "2026-11-01 03:00": ("weekly 2026-W44",),
        "2026-10-31 03:00": ("monthly 2026-10",),
        "2026-09-30 03:00": ("monthly 2026-09",),
        "2026-09-01 03:00": ("monthly 2026-09 (oldest)",),
    }
    actual = {t: r for t, r in fates(times, RetentionPolicy()).items() if r}
    assert expected == actual
    assert sum(1 for r in fates(times, RetentionPolicy()).values() if not r) == 82 - 13


def test_newest_verified_backup_is_protected() -> None:
    """Only the newest backup whose verification passed is kept on that ground."""
    backups = [
        record("2026-11-20 03:00"),
        record("2026-11-19 03:00"),
        record("2026-11-18 03:00", verified=True),
        record("2026-11-17 03:00", verified=True),
    ]
    decisions = plan_retention(backups, policy(last=1), NOW)
    assert [d.reasons for d in decisions] == [("last",), (), ("newest verified",), ()]


def test_groups_by_environment_and_database() -> None:
    """Each (environment, database) is planned on its own; the same name in two environments is two groups."""
    backups = [
        record("2026-11-20 03:00", "app"),
        record("2026-11-19 03:00", "app"),
        record("2026-11-18 03:00", "billing"),
        record("2026-11-17 03:00", "billing"),
        record("2026-11-16 03:00", "app", environment="staging"),
    ]
    decisions = plan_retention(backups, policy(last=1), NOW)
    kept = sorted((d.backup.environment, d.backup.id) for d in decisions if d.keep)
    assert kept == [
        ("production", "app-20261120T030000Z"),
        ("production", "billing-20261118T030000Z"),
        ("staging", "app-20261116T030000Z"),
    ]


def test_all_zero_policy_is_refused() -> None:
    with pytest.raises(PermanentError, match="keeps nothing"):
        plan_retention([record("2026-11-20 03:00")], policy(), NOW)


def test_non_utc_input_is_bucketed_in_utc() -> None:
    """23:30 at UTC-5 on the 19th is 04:30 UTC on the 20th: same day as a 03:00 UTC backup."""
    eastern = datetime(2026, 11, 19, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    local = BackupRecord("app-x", "production", "app", eastern)
    decisions = plan_retention([local, record("2026-11-20 03:00")], policy(daily=5), NOW)
    assert [d.reasons for d in decisions] == [("daily 2026-11-20",), ("daily 2026-11-20 (oldest)",)]


moments = st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(moments, unique=True, max_size=40),
    counts=st.lists(st.integers(0, 5), min_size=6, max_size=6),
    min_keep=st.integers(1, 6),
    within_days=st.integers(0, 30),
)
def test_guards_hold_for_any_history(times: list[datetime], counts: list[int], min_keep: int, within_days: int) -> None:
    """Whatever the history: newest kept, at least min_keep kept, future kept, kept iff a reason is given."""
    pol = RetentionPolicy(*counts, within=Duration(days=within_days), min_keep=min_keep)  # type: ignore[misc]
    if pol.is_empty:
        return
    backups = [BackupRecord(f"app-{t:%Y%m%dT%H%M%S%f}", "production", "app", t) for t in times]
    decisions = plan_retention(backups, pol, NOW)
    assert len(backups) == len(decisions)
    present = [d for d in decisions if d.backup.taken_at <= NOW + timedelta(minutes=5)]
    if present:
        assert present[0].keep
        assert sum(d.keep for d in present) >= min(min_keep, len(present))
    assert all(d.keep for d in decisions if d.backup.taken_at > NOW + timedelta(minutes=5))
    assert [d.backup.taken_at for d in decisions] == sorted(times, reverse=True)
