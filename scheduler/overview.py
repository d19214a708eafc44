"""What the schedule looks like now: declared entries merged with registered ones, with their runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from railyard.core.cron import next_run, period_around
from railyard.core.errors import NotFoundError
from railyard.core.serializer import SerializerName
from scheduler import registration, runs
from scheduler.schedule import Entry

# registered: running as declared; changed: registered with another cron or arguments than
# declared here (the scheduler applies them when it restarts); not registered: declared but
# no scheduler has started with it yet; not declared: registered but absent from these settings.
STATES = ("registered", "changed", "not registered", "not declared")


@dataclass(frozen=True)
class EntryStatus:
    entry: Entry
    state: str
    next_run: datetime
    last_run: runs.LastRun | None
    now: datetime | None = None
    folded: int = 0  # periods folded into an earlier job of this entry that was still queued or running

    @property
    def period_s(self) -> float:
        """Length of the entry's current period (cron runs are not always evenly spaced)."""
        start, end = period_around(self.entry.cron, self.entry.timezone, self.now or self.next_run)
        return (end - start).total_seconds()

    def slower_than_period(self) -> str | None:
        """A warning when the entry's last job ran (or has been running) longer than its period."""
        last = self.last_run
        duration = last.duration_s(self.now) if last and self.now else None
        if last is None or duration is None or duration <= self.period_s:
            return None
        took = "has been running for" if last.active else "took"
        return (
            f"{self.entry.id}: the last run {took} {_span(duration)}, longer than its period of {_span(self.period_s)} "
            f"({self.entry.cron}); periods that come round meanwhile are folded into it ({self.folded} so far). "
            "Schedule it less often, or make it faster"
        )

    def to_dict(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "id": self.entry.id,
            "cron": self.entry.cron,
            "timezone": self.entry.timezone,
            "job": self.entry.func,
            "kwargs": dict(self.entry.kwargs),
            "state": self.state,
            "next_run_utc": self.next_run.isoformat(),
            "next_run_local": self.next_run.astimezone(ZoneInfo(self.entry.timezone)).isoformat(),
            "last_run": None
            if last is None
            else {
                "fired_at": last.fired_at.isoformat(),
                "reason": last.reason,
                "job_id": last.job_id,
                "outcome": last.outcome,
                "duration_s": None
                if self.now is None or last.duration_s(self.now) is None
                else round(last.duration_s(self.now) or 0.0, 1),
            },
            "period_s": self.period_s,
            "folded": self.folded,
            "warning": self.slower_than_period(),
        }


def describe(
    connection: Redis, declared: Sequence[Entry], *, environment: str, now: datetime, serializer: SerializerName
) -> list[EntryStatus]:
    """Every entry, declared ones first in their order; a registered entry shows what will run."""
    registered = registration.registered_entries(connection, environment, serializer=serializer)

    def status(entry: Entry, state: str, when: datetime) -> EntryStatus:
        last = runs.read(connection, environment, entry.id, serializer=serializer)
        return EntryStatus(entry, state, when, last, now, runs.folded(connection, environment, entry.id))

    statuses = []
    for entry in declared:
        current = registered.pop(entry.id, None)
        if current is None:
            statuses.append(status(entry, "not registered", next_run(entry.cron, entry.timezone, now)))
        else:
            state = "registered" if current.fingerprint == entry.fingerprint else "changed"
            statuses.append(status(current.entry, state, current.next_run))
    for current in registered.values():
        statuses.append(status(current.entry, "not declared", current.next_run))
    return statuses


def find_entry(
    connection: Redis, declared: Sequence[Entry], entry_id: str, *, environment: str, serializer: SerializerName
) -> Entry:
    """The entry named ``entry_id``: as registered (what the scheduler runs), else as declared."""
    registered = registration.registered_entries(connection, environment, serializer=serializer)
    if entry_id in registered:
        return registered[entry_id].entry
    for entry in declared:
        if entry.id == entry_id:
            return entry
    known = sorted({e.id for e in declared} | registered.keys())
    raise NotFoundError(
        f"no schedule entry {entry_id!r} in environment {environment!r}; known entries: {', '.join(known) or 'none'}"
    )


def _span(seconds: float) -> str:
    """A duration for people: 42 s, 12 min, 1 h 10 min, 2 d 3 h."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
