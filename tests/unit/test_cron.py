"""Cron arithmetic: validation, next and previous run across DST, month and year boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railyard.core.cron import cron_problem, next_run, period_around, previous_run, zone_problem


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NEXT_RUN_CASES = [
    # cron, zone, after (UTC), expected next run (UTC), what it shows
    ("0 3 * * *", "UTC", "2026-05-10T02:59", "2026-05-10T03:00", "same day"),
    ("0 3 * * *", "UTC", "2026-05-10T03:00", "2026-05-11T03:00", "strictly after"),
    ("0 3 * * *", "UTC", "2026-12-31T03:00", "2027-01-01T03:00", "year boundary"),
    ("0 0 1 * *", "UTC", "2026-01-31T12:00", "2026-02-01T00:00", "month boundary"),
    ("0 0 31 * *", "UTC", "2026-04-01T00:00", "2026-05-31T00:00", "skips a 30-day month"),
    ("0 12 29 2 *", "UTC", "2026-03-01T00:00", "2028-02-29T12:00", "next leap day"),
    ("0 3 * * 1", "UTC", "2026-05-10T00:00", "2026-05-11T03:00", "day of week (Monday)"),
    ("@daily", "UTC", "2026-05-10T00:00", "2026-05-11T00:00", "alias"),
    ("*/15 * * * *", "UTC", "2026-05-10T23:59", "2026-05-11T00:00", "minute step over midnight"),
    # New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    ("0 3 * * *", "America/New_York", "2026-03-07T08:00", "2026-03-08T07:00", "03:00 EDT after spring forward"),
    ("30 2 * * *", "America/New_York", "2026-03-07T07:30", "2026-03-08T07:30", "skipped 02:30 runs at 03:30 EDT"),
    ("30 2 * * *", "America/New_York", "2026-03-08T07:30", "2026-03-09T06:30", "then 02:30 EDT"),
    ("30 2 * * *", "America/New_York", "2026-03-08T07:10", "2026-03-08T07:30", "asked inside the shifted hour"),
    ("0 * * * *", "America/New_York", "2026-03-08T06:00", "2026-03-08T07:00", "hourly across the gap"),
    ("0 * * * *", "America/New_York", "2026-03-08T07:00", "2026-03-08T08:00", "no double run at 03:00 EDT"),
    ("30 1 * * *", "America/New_York", "2026-10-31T05:30", "2026-11-01T05:30", "repeated 01:30: first occurrence"),
    ("30 1 * * *", "America/New_York", "2026-11-01T05:30", "2026-11-02T06:30", "not again at 01:30 EST"),
    ("30 1 * * *", "America/New_York", "2026-11-01T06:00", "2026-11-02T06:30", "asked between the two 01:30s"),
    ("0 3 * * *", "America/New_York", "2026-10-31T07:00", "2026-11-01T08:00", "03:00 EST after fall back"),
    # London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
    ("30 1 * * *", "Europe/London", "2026-03-28T01:30", "2026-03-29T01:30", "skipped 01:30 runs at 02:30 BST"),
    ("30 1 * * *", "Europe/London", "2026-03-29T01:30", "2026-03-30T00:30", "then 01:30 BST"),
    ("30 1 * * *", "Europe/London", "2026-10-24T00:30", "2026-10-25T00:30", "repeated 01:30 in London"),
    ("30 1 * * *", "Europe/London", "2026-10-25T00:30", "2026-10-26T01:30", "once"),
    # Sydney (southern hemisphere): 2026-04-05 03:00 AEDT -> 02:00 AEST; 2026-10-04 02:00 -> 03:00 AEDT.
    ("30 2 * * *", "Australia/Sydney", "2026-04-03T16:00", "2026-04-04T15:30", "repeated 02:30 AEDT first"),
    ("30 2 * * *", "Australia/Sydney", "2026-04-04T15:30", "2026-04-05T16:30", "then 02:30 AEST"),
    ("30 2 * * *", "Australia/Sydney", "2026-10-02T16:30", "2026-10-03T16:30", "skipped 02:30 runs at 03:30"),
    # Lord Howe shifts by 30 minutes: 2026-04-05 02:00 (+11) -> 01:30 (+10:30).
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-03T14:45", "2026-04-04T14:45", "half-hour repeat, first"),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:45", "2026-04-05T15:15", "then +10:30"),
]


@pytest.mark.parametrize(("cron", "zone", "after", "expected", "why"), NEXT_RUN_CASES)
def test_next_run(cron: str, zone: str, after: str, expected: str, why: str) -> None:
    assert utc(expected) == next_run(cron, zone, utc(after)), why


PREVIOUS_RUN_CASES = [
    ("0 3 * * *", "UTC", "2026-05-10T02:59", "2026-05-09T03:00", "yesterday"),
    ("0 3 * * *", "UTC", "2026-05-10T03:00", "2026-05-10T03:00", "at the run itself"),
    ("0 0 1 1 *", "UTC", "2026-01-01T00:00", "2026-01-01T00:00", "new year"),
    ("0 0 1 1 *", "UTC", "2025-12-31T23:59", "2025-01-01T00:00", "a year back"),
    ("30 2 * * *", "America/New_York", "2026-03-08T07:10", "2026-03-07T07:30", "skipped run not yet due"),
    ("30 2 * * *", "America/New_York", "2026-03-08T07:45", "2026-03-08T07:30", "skipped run, shifted"),
    ("30 1 * * *", "America/New_York", "2026-11-01T05:20", "2026-10-31T05:30", "before the first 01:30"),
    ("30 1 * * *", "America/New_York", "2026-11-01T06:45", "2026-11-01T05:30", "in the repeated hour"),
    ("30 1 * * *", "America/New_York", "2026-11-01T06:20", "2026-11-01T05:30", "01:20 EST, after 01:30 EDT"),
]


@pytest.mark.parametrize(("cron", "zone", "at", "expected", "why"), PREVIOUS_RUN_CASES)
def test_previous_run(cron: str, zone: str, at: str, expected: str, why: str) -> None:
    assert utc(expected) == previous_run(cron, zone, utc(at)), why


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe"])
@pytest.mark.parametrize("cron", ["30 2 * * *", "30 1 * * *", "0 3 * * *", "15 0 * * *"])
def test_daily_cron_runs_once_every_local_day_for_a_year(cron: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    runs = []
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    while instant < datetime(2027, 1, 1, tzinfo=UTC):
        instant = next_run(cron, zone, instant)
        runs.append(instant)
    local_days = [r.astimezone(tz).date() for r in runs]
    first = local_days[0]
    expected_days = [first + timedelta(days=i) for i in range(len(local_days))]
    assert expected_days == local_days
    assert date(2026, 12, 31) <= local_days[-1]


ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata"]
CRONS = ["0 3 * * *", "30 2 * * *", "30 1 * * *", "*/20 * * * *", "0 * * * *", "45 4 * * 0", "0 0 1 * *"]


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
)
def test_previous_and_next_run_bracket_any_instant(at: datetime, zone: str, cron: str) -> None:
    """previous <= at < next, both are runs, and no run lies between them."""
    at = at.replace(tzinfo=UTC)
    start, end = period_around(cron, zone, at)
    assert start <= at < next_run(cron, zone, at) == end
    assert start == previous_run(cron, zone, start)
    assert end == previous_run(cron, zone, end)
    assert start == previous_run(cron, zone, end - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 3 * *", "has 4 fields"),
        ("0 0 3 * * *", "has 6 fields"),
        ("61 3 * * *", "not a valid cron expression"),
        ("0 3 * * funday", "not a valid cron expression"),
        ("0 0 30 2 *", "never matches a date"),
        ("", "has 0 fields"),
    ],
)
def test_cron_problem_names_what_is_wrong(expression: str, fragment: str) -> None:
    problem = cron_problem(expression)
    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize("expression", ["0 3 * * *", "@daily", "@WEEKLY", "*/5 1-4 * * mon-fri", "0 3 L * *"])
def test_cron_problem_accepts_valid_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


def test_zone_problem() -> None:
    assert zone_problem("Europe/London") is None
    assert zone_problem("UTC") is None
    problem = zone_problem("Mars/Olympus_Mons")
    assert problem is not None and "IANA" in problem
    assert zone_problem("../etc/passwd") is not None
