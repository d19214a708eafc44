"""S3_OBJECT_LOCK and S3_OBJECT_LOCK_DAYS: parsed once, every problem named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from railyard.core.errors import ConfigError
from railyard.core.storage.lock import ObjectLock, object_lock_from_env


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"S3_OBJECT_LOCK": "", "S3_OBJECT_LOCK_DAYS": ""}, None),
        ({"S3_OBJECT_LOCK": "governance", "S3_OBJECT_LOCK_DAYS": "30"}, ObjectLock("GOVERNANCE", 30)),
        ({"S3_OBJECT_LOCK": " Compliance ", "S3_OBJECT_LOCK_DAYS": "1"}, ObjectLock("COMPLIANCE", 1)),
    ],
)
def test_valid_settings(env: dict[str, str], expected: ObjectLock | None) -> None:
    assert expected == object_lock_from_env(env)


@pytest.mark.parametrize(
    ("env", "problems"),
    [
        (
            {"S3_OBJECT_LOCK": "worm", "S3_OBJECT_LOCK_DAYS": "7"},
            ["S3_OBJECT_LOCK='worm' is not one of governance, compliance; unset it for no lock"],
        ),
        (
            {"S3_OBJECT_LOCK": "governance"},
            ["S3_OBJECT_LOCK is set but S3_OBJECT_LOCK_DAYS is not; set it to the days each backup is locked"],
        ),
        (
            {"S3_OBJECT_LOCK_DAYS": "7"},
            ["S3_OBJECT_LOCK_DAYS is set but S3_OBJECT_LOCK is not; set S3_OBJECT_LOCK=governance or compliance"],
        ),
        (
            {"S3_OBJECT_LOCK": "governance", "S3_OBJECT_LOCK_DAYS": "0"},
            ["S3_OBJECT_LOCK_DAYS=0 is out of range; use a whole number from 1 to 36500"],
        ),
        (
            {"S3_OBJECT_LOCK": "compliance", "S3_OBJECT_LOCK_DAYS": "a week"},
            ["S3_OBJECT_LOCK_DAYS='a week' is not a whole number; use e.g. S3_OBJECT_LOCK_DAYS=0"],
        ),
    ],
)
def test_each_problem_is_named(env: dict[str, str], problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        object_lock_from_env(env)
    assert problems == caught.value.problems


def test_retain_until_is_whole_days_later() -> None:
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert now + timedelta(days=30) == ObjectLock("GOVERNANCE", 30).retain_until(now)
