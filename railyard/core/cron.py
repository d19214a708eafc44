"""Cron arithmetic in a time zone: validation, next run and previous run. Pure; no clock.

Cron fields are matched against local wall-clock time in the entry's time zone, then
turned into a UTC instant with one rule across daylight-saving changes: a local time is
read as it was *before* the clock changed (PEP 495 ``fold=0``). So a time that occurs
twice when clocks go back runs once, at its first occurrence, and a time the clocks skip
when they go forward runs once, as many minutes after the change as it would have been
after the last time before it (02:30 on a night that jumps from 02:00 to 03:00 runs at
03:30). Every run is one UTC instant; nothing runs twice or is skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

# A local time skipped or repeated by a clock change is never more than this far from the
# change; every change in the tz database since 2012 is at most 2 h (Antarctica/Troll).
MAX_CLOCK_CHANGE = timedelta(hours=3)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a usable five-field cron expression, or None if it is."""
    text = expression.strip()
    if text.lower() in ALIASES:
        return None
    if len(text.split()) != 5:
        return (
            f"{expression!r} has {len(text.split())} fields; use five: minute hour day-of-month month "
            "day-of-week (e.g. '0 3 * * *'), or one of " + ", ".join(ALIASES)
        )
    if not croniter.is_valid(text):
        return f"{expression!r} is not a valid cron expression; e.g. '0 3 * * *' runs daily at 03:00"
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        return f"{expression!r} never matches a date (e.g. 30 February); pick days that exist"
    return None


# Files of the zone database that name no place: the machine's own zone, and "no zone configured".
NOT_A_PLACE = frozenset({"localtime", "Factory", "posixrules"})


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None if it is."""
    if name not in NOT_A_PLACE and name in _known_zones():
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
        else:
            return None
    return f"{name!r} is not an IANA time zone name; e.g. UTC, Europe/London, America/New_York"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of naive local time ``wall`` in ``zone`` (fold=0, see module docstring)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def to_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """Naive local wall-clock time of aware ``instant`` in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _walk(expression: str, start: datetime, *, forward: bool) -> Iterator[datetime]:
    it = croniter(expression.strip(), start)
    step = it.get_next if forward else it.get_prev
    while True:
        yield step(datetime)


def next_run(expression: str, zone: ZoneInfo | str, after: datetime) -> datetime:
    """The first run strictly after aware ``after``, as an aware UTC datetime."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    after = after.astimezone(UTC)
    # A wall time shortly before ``after``'s may lie in a skipped hour and map to later.
    start = to_wall(after, zone) - MAX_CLOCK_CHANGE
    best: datetime | None = None
    best_wall = start
    for wall in _walk(expression, start, forward=True):
        if best is not None and wall > best_wall + MAX_CLOCK_CHANGE:
            return best
        instant = to_utc(wall, zone)
        if instant > after and (best is None or instant < best):
            best, best_wall = instant, wall
    raise AssertionError("a cron walk never ends")


def previous_run(expression: str, zone: ZoneInfo | str, at: datetime) -> datetime:
    """The last run at or before aware ``at``, as an aware UTC datetime."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    at = at.astimezone(UTC)
    # A wall time shortly after ``at``'s may be a repeated hour's first occurrence, earlier.
    start = to_wall(at, zone) + MAX_CLOCK_CHANGE + timedelta(minutes=1)
    best: datetime | None = None
    best_wall = start
    for wall in _walk(expression, start, forward=False):
        if best is not None and wall < best_wall - MAX_CLOCK_CHANGE:
            return best
        instant = to_utc(wall, zone)
        if instant <= at and (best is None or instant > best):
            best, best_wall = instant, wall
    raise AssertionError("a cron walk never ends")


def period_around(expression: str, zone: ZoneInfo | str, at: datetime) -> tuple[datetime, datetime]:
    """The scheduled period containing ``at``: (last run at or before it, the run after that)."""
    start = previous_run(expression, zone, at)
    return start, next_run(expression, zone, start)
