"""Run a schedule entry now, by hand (``railyard schedule run``, the dashboard's "run now")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis

from railyard.core import registry
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from scheduler import overview, runs, trigger
from scheduler.schedule import Entry, build_schedule, targets_from_settings


def declared(settings: Settings) -> tuple[Entry, ...]:
    return build_schedule(ScheduleConfig.from_env(), targets_from_settings(settings), registry.REGISTRY)


@dataclass(frozen=True)
class ManualRun:
    entry: Entry
    job_id: str
    enqueued: bool  # False: this period's work was already enqueued, nothing new was
    outcome: str  # of the job, when it was already enqueued


def run_now(settings: Settings, entry_id: str, now: datetime) -> ManualRun:
    """Enqueue entry ``entry_id``'s job now, unless its work for the current period is already enqueued."""
    environment, serializer = settings.environment, settings.serializer
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        entry = overview.find_entry(
            connection, declared(settings), entry_id, environment=environment, serializer=serializer
        )
        result = trigger.fire(
            connection, entry, environment=environment, now=now, reason="manual", serializer=serializer
        )
        outcome = runs.job_outcome(connection, result.job_id, serializer=serializer)
    finally:
        connection.close()
    return ManualRun(entry, result.job_id, result.enqueued, outcome)
