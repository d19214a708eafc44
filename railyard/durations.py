"""Durations written the way people write them: ``30m``, ``12h``, ``7d``, ``1d12h``."""

from __future__ import annotations

import re
from datetime import timedelta

from railyard.errors import PermanentError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART_RE = re.compile(r"(\d{1,9})([smhdw])", re.ASCII)
MAX_DURATION = timedelta(days=100 * 365)


class DurationError(PermanentError):
    """A duration string is not in the ``<number><unit>`` form."""


def parse_duration(text: str) -> timedelta:
    """``7d`` -> 7 days. Units s, m, h, d, w may be combined (``1h30m``); the total must be positive."""
    raw = text.strip().lower()
    pos, total = 0, 0
    for match in _PART_RE.finditer(raw):
        if match.start() != pos:
            break
        total += int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        raise DurationError(
            f"{text[:40]!r} is not a duration; write a number and a unit s, m, h, d or w, e.g. 30m, 12h, 7d or 1h30m"
        )
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
