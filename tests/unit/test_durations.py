"""Durations as people write them, for --older-than and BACKUP_STALE_AFTER."""

from datetime import timedelta

import pytest

from railyard.core.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
        ("1h30m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        (" 26H ", timedelta(hours=26)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert expected == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration"),
        ("7", "is not a duration"),
        ("d", "is not a duration"),
        ("7 days", "is not a duration"),
        ("-1h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("h1", "is not a duration"),
        ("0m", "is zero"),
        ("0d0h", "is zero"),
        ("999999999w", "longer than 100 years"),
    ],
)
def test_bad_durations_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00m"), (3 * 3600 + 300, "3h05m"), (90000, "1d01h")],
)
def test_format_duration(seconds: int, expected: str) -> None:
    assert expected == format_duration(timedelta(seconds=seconds))
