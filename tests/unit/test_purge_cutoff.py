"""The cut-off a data retention policy computes, in the column's own type."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jobs.retention.purge import PurgeTarget
from jobs.retention.purge_config import PurgePolicy
from railyard.core.durations import Duration

NOW = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("max_age", "column_type", "expected"),
    [
        (Duration(months=1), "timestamp with time zone", datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (Duration(days=1, hours=12), "timestamp without time zone", datetime(2026, 3, 29, 21, 30)),
        (Duration(days=1), "date", date(2026, 3, 30)),
        (Duration(hours=10), "date", date(2026, 3, 30)),
    ],
)
def test_cutoff_in_the_column_type(max_age: Duration, column_type: str, expected: datetime | date) -> None:
    target = PurgeTarget(PurgePolicy("t", "c", max_age), "public", "t", "c", column_type, indexed=True)
    assert target.cutoff(NOW) == expected
