"""The weekly summary's figures: backups in the week, size trend, verifications; pure."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from jobs.backup.catalog import Manifest
from jobs.backup.summary import summarize
from tests.unit.test_staleness import manifest

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def sized(database: str, days_ago: float, size: int) -> Manifest:
    return replace(manifest(database, NOW - timedelta(days=days_ago)), size=size)


def test_backups_size_trend_and_verifications_per_series() -> None:
    backups = [
        sized("app", 9, 1000),  # before the week: the baseline
        sized("app", 6, 1050),
        sized("app", 1, 1100),
        sized("reports", 20, 500),  # nothing this week
    ]
    newest = backups[2]
    verifications = {
        "a": {"series": "app", "result": "passed", "verified_at": (NOW - timedelta(days=2)).isoformat()},
        "b": {"series": "app", "result": "failed", "verified_at": (NOW - timedelta(days=3)).isoformat()},
        "c": {"series": "app", "result": "failed", "verified_at": (NOW - timedelta(days=8)).isoformat()},  # older
    }
    summary, details = summarize(backups, verifications, NOW)
    assert {
        "backups": 2,
        "newest_id": newest.id,
        "newest_size": 1100,
        "size_change_percent": 10.0,
        "verifications_passed": 1,
        "verifications_failed": 1,
    } == details["series"]["app"]
    assert (0, 500, None) == tuple(
        details["series"]["reports"][k] for k in ("backups", "newest_size", "size_change_percent")
    )
    assert summary == (
        "weekly summary to 2026-11-30: app: 2 backups, newest 1.1 KB (+10.0% over the week), verifications 1 passed, "
        "1 failed; reports: 0 backups, newest 500 B, verifications 0 passed, 0 failed"
    )


def test_an_empty_store() -> None:
    assert "weekly summary to 2026-11-30: no backups at all" == summarize([], {}, NOW)[0]
