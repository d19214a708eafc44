"""Calendar durations such as ``90d``, ``1y6m`` or ``36h``, as restic's ``--keep-within`` spells them.

Units: ``y`` years, ``m`` months (not minutes), ``w`` weeks, ``d`` days, ``h`` hours. Years and
months are calendar steps (one month before March 31 is February 28 or 29), so "keep 1m"
means the same calendar month length a person would count.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_PART_RE = re.compile(r"(\d+)([ymwdh])", re.ASCII)
_WHOLE_RE = re.compile(r"^(?:\d+[ymwdh])+$", re.ASCII)
UNITS_HELP = "a number and a unit, combinable: y (years), m (months), w (weeks), d (days), h (hours), e.g. 90d or 1y6m"


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``text``; raise ValueError with a message naming the expected form."""
        compact = text.strip().lower().replace(" ", "")
        if not _WHOLE_RE.match(compact):
            raise ValueError(f"{text!r} is not a duration; use {UNITS_HELP}")
        totals = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        seen: set[str] = set()
        for number, unit in _PART_RE.findall(compact):
            if unit in seen:
                raise ValueError(f"{text!r} names the unit {unit!r} twice; write each unit once, e.g. 1y6m")
            seen.add(unit)
            totals[unit] = int(number)
        return cls(years=totals["y"], months=totals["m"], days=totals["d"] + 7 * totals["w"], hours=totals["h"])

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
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"
