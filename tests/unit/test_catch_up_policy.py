"""When is a database's newest backup overdue: one cron period plus the grace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.catch_up import is_overdue
from scheduler.schedule import BACKUP_JOB, Entry


def entry(cron: str, zone: str = "UTC") -> Entry:
    return Entry("backup-app", "backup", cron, zone, BACKUP_JOB, {}, "app", True)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # cron, zone, newest backup finished (UTC, or None), now (UTC), overdue?, why
    ("0 3 * * *", "UTC", None, "2026-05-10T09:00", True, "no backup at all"),
    ("0 3 * * *", "UTC", "2026-05-10T03:20", "2026-05-10T09:00", False, "today's backup"),
    ("0 3 * * *", "UTC", "2026-05-09T03:20", "2026-05-10T05:19", False, "26 h old: within the grace"),
    ("0 3 * * *", "UTC", "2026-05-09T03:20", "2026-05-10T05:21", True, "just over 26 h"),
    ("0 3 * * *", "UTC", "2026-05-06T03:20", "2026-05-10T02:00", True, "days old"),
    ("0 3 * * 1", "UTC", "2026-05-04T03:10", "2026-05-10T09:00", False, "weekly: 6 days old is fine"),
    ("0 3 * * 1", "UTC", "2026-05-04T03:10", "2026-05-11T05:11", True, "weekly: 7 d 2 h is overdue"),
    ("0 * * * *", "UTC", "2026-05-10T06:05", "2026-05-10T09:04", False, "hourly: 3 h within 1 h + 2 h"),
    ("0 * * * *", "UTC", "2026-05-10T06:05", "2026-05-10T09:06", True, "hourly: over 3 h"),
    # New York's period from 2026-10-31 03:00 EDT to 2026-11-01 03:00 EST lasts 25 h: the limit is 27 h.
    ("0 3 * * *", "America/New_York", "2026-10-30T07:10", "2026-10-31T09:40", False, "26.5 h in a 25 h period"),
    ("0 3 * * *", "America/New_York", "2026-10-30T07:10", "2026-10-31T10:11", True, "just over 25 h + 2 h"),
]


@pytest.mark.parametrize(("cron", "zone", "newest", "now", "overdue", "why"), CASES)
def test_is_overdue(cron: str, zone: str, newest: str | None, now: str, overdue: bool, why: str) -> None:
    finished = utc(newest) if newest else None
    assert overdue == is_overdue(entry(cron, zone), finished, utc(now)), why


def test_naive_manifest_times_are_utc() -> None:
    naive = datetime(2026, 5, 9, 3, 20)
    assert is_overdue(entry("0 3 * * *"), naive, utc("2026-05-10T05:21"))
    assert not is_overdue(entry("0 3 * * *"), naive, utc("2026-05-10T05:19"))
