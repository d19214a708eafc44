"""Durations as people write them, read by one parser: ``30m``, ``12h``, ``7d``, ``1d12h``, ``6mo``, ``1y6mo``.

Units, combinable, each at most once: ``y`` years, ``mo`` months, ``w`` weeks, ``d`` days,
``h`` hours, ``m`` minutes, ``s`` seconds. ``m`` is always minutes and ``mo`` always months,
so the two cannot be confused.

Two readings of the same text:
- :func:`parse_duration` gives a fixed :class:`~datetime.timedelta`, for ages and intervals
  (``BACKUP_STALE_AFTER``, ``--older-than``). Years and months have no fixed length, so it
  refuses them and asks for days.
- :meth:`Duration.parse` gives calendar steps, for retention (``BACKUP_KEEP_WITHIN``, a purge
  rule's ``max_age``): one month before March 31 is February 28 or 29, as a person counts.
  Retention is counted in hours or longer; minutes and seconds are refused there, and so is
  the earlier spelling ``1m`` for a month, with a message that names ``1mo``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from railyard.core.errors import PermanentError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART_RE = re.compile(r"(\d{1,9})(mo|[ywdhms])", re.ASCII)
MAX_DURATION = timedelta(days=100 * 365)
CALENDAR_UNITS = "a number and a unit, combinable: y (years), mo (months), w (weeks), d (days), h (hours)"
FIXED_UNITS = "a number and a unit, combinable: w (weeks), d (days), h (hours), m (minutes), s (seconds)"


class DurationError(PermanentError, ValueError):
    """A duration string is not in the ``<number><unit>`` form, or uses a unit its setting does not take."""


def _parts(text: str, units: str, example: str) -> dict[str, int]:
    """``text`` split into ``{unit: number}``; each unit at most once, nothing else in between."""
    raw = text.strip().lower().replace(" ", "")
    pos, found = 0, {}
    for match in _PART_RE.finditer(raw):
        if match.start() != pos:
            break
        number, unit = match.groups()
        if unit in found:
            raise DurationError(f"{text[:40]!r} names the unit {unit!r} twice; write each unit once, e.g. {example}")
        found[unit] = int(number)
        pos = match.end()
    if not raw or pos != len(raw):
        raise DurationError(f"{text[:40]!r} is not a duration; use {units}, e.g. {example}")
    return found


def parse_duration(text: str) -> timedelta:
    """``7d`` -> 7 days. Units w, d, h, m, s may be combined (``1h30m``); the total must be positive."""
    found = _parts(text, FIXED_UNITS, "30m, 12h, 7d or 1h30m")
    calendar_units = [u for u in ("y", "mo") if u in found]
    if calendar_units:
        raise DurationError(
            f"{text[:40]!r} counts in {' and '.join('years' if u == 'y' else 'months' for u in calendar_units)}, "
            "which have no fixed length here; write days instead, e.g. 30d or 365d"
        )
    total = sum(n * UNIT_SECONDS[u] for u, n in found.items())
    if total <= 0:
        raise DurationError(f"{text[:40]!r} is zero; give a positive duration such as 30m, 12h or 7d")
    if total > MAX_DURATION.total_seconds():
        raise DurationError(f"{text[:40]!r} is longer than 100 years; give a shorter duration")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """A compact, readable age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


@dataclass(frozen=True)
class Duration:
    """Calendar steps back from a moment: years and months as a calendar counts them, then days and hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``text``; raise :class:`DurationError` (a ValueError) naming the expected form."""
        found = _parts(text, CALENDAR_UNITS, "90d or 1y6mo")
        if "m" in found:
            months = text.strip().lower().replace(" ", "").replace(f"{found['m']}m", f"{found['m']}mo", 1)
            raise DurationError(
                f"{text[:40]!r}: 'm' means minutes, and retention is counted in hours or longer; "
                f"for months write 'mo', e.g. {months}"
            )
        if "s" in found:
            raise DurationError(f"{text[:40]!r} counts in seconds; retention is counted in hours or longer, e.g. 36h")
        return cls(
            years=found.get("y", 0),
            months=found.get("mo", 0),
            days=found.get("d", 0) + 7 * found.get("w", 0),
            hours=found.get("h", 0),
        )

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration: calendar years and months first, then days and hours."""
        month_index = moment.year * 12 + (moment.month - 1) - (self.years * 12 + self.months)
        year, month = divmod(month_index, 12)
        month += 1
        if year < 1:
            return datetime.min.replace(tzinfo=moment.tzinfo)
        day = min(moment.day, calendar.monthrange(year, month)[1])
        shifted = moment.replace(year=year, month=month, day=day)
        try:
            return shifted - timedelta(days=self.days, hours=self.hours)
        except OverflowError:
            return datetime.min.replace(tzinfo=moment.tzinfo)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "mo"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"
