"""Calendar durations (retention) and their arithmetic; minutes and months never confused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from railyard.core.durations import Duration, DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", Duration(days=90)),
        ("1y6mo", Duration(years=1, months=6)),
        ("2w", Duration(days=14)),
        ("1w2d", Duration(days=9)),
        ("36h", Duration(hours=36)),
        ("1y2mo3d4h", Duration(years=1, months=2, days=3, hours=4)),
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
        ("30m", "for months write 'mo', e.g. 30mo"),
        ("1y6m", "for months write 'mo', e.g. 1y6mo"),
        ("90s", "counts in seconds"),
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
    assert str(Duration.parse("1y2mo3d4h")) == "1y2mo3d4h"
    assert str(Duration.parse("2w")) == "14d"


def test_one_parser_reads_minutes_and_months_apart() -> None:
    """``m`` is minutes and ``mo`` months in every setting: the fixed reading refuses what has no fixed length."""
    assert timedelta(minutes=1) == parse_duration("1m")
    assert Duration(months=1) == Duration.parse("1mo")
    with pytest.raises(DurationError, match="counts in months, which have no fixed length here; write days"):
        parse_duration("1mo")
    with pytest.raises(DurationError, match="counts in years and months"):
        parse_duration("1y1mo")
