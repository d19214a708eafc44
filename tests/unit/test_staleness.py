"""Which databases' newest backups are stale, and which stale period an alert belongs to (pure)."""

from datetime import UTC, datetime, timedelta

import pytest

from jobs.backup.catalog import Manifest
from jobs.backup.staleness import assess, stale_period

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STALE_AFTER = timedelta(hours=26)


def manifest(database: str, finished: datetime) -> Manifest:
    stamp = finished.strftime("%Y%m%dT%H%M%SZ")
    return Manifest(
        id=f"{database}-{stamp}",
        key=f"development/{database}/{database}-{stamp}.dump.zst",
        database=database,
        environment="development",
        host="h:5432",
        server_version="16",
        pg_dump_version="16",
        format="custom",
        compression="zstd-3",
        size=10,
        raw_size=20,
        sha256="0" * 64,
        started_at=finished.isoformat(),
        finished_at=finished.isoformat(),
        duration_s=1.0,
        railyard_version="0.1.0",
    )


@pytest.mark.parametrize(
    ("age", "stale"),
    [(timedelta(hours=1), False), (STALE_AFTER, False), (STALE_AFTER + timedelta(seconds=1), True)],
)
def test_stale_when_older_than_the_limit(age: timedelta, stale: bool) -> None:
    [item] = assess({"app": manifest("app", NOW - age)}, {}, NOW, STALE_AFTER)
    assert (stale, age) == (item.stale, item.age)


def test_a_database_without_any_backup_is_stale() -> None:
    [item] = assess({"app": None}, {}, NOW, STALE_AFTER)
    assert (True, None, None) == (item.stale, item.newest, item.age)


def test_latest_verification_per_database_decides() -> None:
    m = manifest("app", NOW - timedelta(hours=1))
    markers = {
        "old": {"database": "app", "key": "old", "verified_at": "2026-11-18T00:00:00+00:00", "result": "passed"},
        m.key: {"database": "app", "key": m.key, "verified_at": "2026-11-20T11:30:00+00:00", "result": "failed"},
        "other": {"database": "web", "key": "x", "verified_at": "2026-11-20T11:59:00+00:00", "result": "passed"},
    }
    [item] = assess({"app": m}, markers, NOW, STALE_AFTER)
    assert (True, "failed") == (item.verification_failed, item.as_dict()["verified"])


def test_verified_is_null_when_the_newest_backup_was_not_verified() -> None:
    m = manifest("app", NOW - timedelta(hours=1))
    markers = {"k": {"database": "app", "key": "older", "verified_at": "2026-11-19T00:00:00+00:00", "result": "passed"}}
    [item] = assess({"app": m}, markers, NOW, STALE_AFTER)
    assert (None, False) == (item.as_dict()["verified"], item.verification_failed)


@pytest.mark.parametrize(
    ("age_h", "period"),
    [(27, 0), (51, 0), (53, 1), (79, 2)],
)
def test_one_alert_period_per_stale_after(age_h: int, period: int) -> None:
    [item] = assess({"app": manifest("app", NOW - timedelta(hours=age_h))}, {}, NOW, STALE_AFTER)
    assert period == stale_period(item, NOW, STALE_AFTER)
