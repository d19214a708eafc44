"""Durations as restic spells them, and calendar arithmetic on them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.duration import Duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", Duration(days=90)),
        ("1y6m", Duration(years=1, months=6)),
        ("2w", Duration(days=14)),
        ("1w2d", Duration(days=9)),
        ("36h", Duration(hours=36)),
        ("1y2m3d4h", Duration(years=1, months=2, days=3, hours=4)),
        (" 7D ", Duration(days=7)),
    ],
)
def test_parse(text: str, expected: Duration) -> None:
    assert expected == Duration.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration"),
        ("90", "is not a duration"),
        ("d", "is not a duration"),
        ("5x", "is not a duration"),
        ("-1d", "is not a duration"),
        ("1.5d", "is not a duration"),
        ("1d2d", "twice"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Duration.parse(text)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("duration", "moment", "expected"),
    [
        (Duration(months=1), utc(2026, 3, 31, 10), utc(2026, 2, 28, 10)),
        (Duration(months=1), utc(2024, 3, 31, 10), utc(2024, 2, 29, 10)),
        (Duration(years=1), utc(2024, 2, 29), utc(2023, 2, 28)),
        (Duration(months=2), utc(2026, 1, 15), utc(2025, 11, 15)),
        (Duration(months=14), utc(2026, 1, 15), utc(2024, 11, 15)),
        (Duration(days=1, hours=6), utc(2026, 3, 1, 3), utc(2026, 2, 27, 21)),
        (Duration(years=5000), utc(2026, 1, 1), datetime.min.replace(tzinfo=UTC)),
    ],
)
def test_before(duration: Duration, moment: datetime, expected: datetime) -> None:
    assert expected == duration.before(moment)


def test_str_round_trips() -> None:
    assert str(Duration.parse("1y2m3d4h")) == "1y2m3d4h"
    assert str(Duration.parse("2w")) == "14d"
