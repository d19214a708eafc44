"""Catch-up: back up now a database whose newest backup is overdue.

A scheduler that was down (or a worker that failed) at the cron time would otherwise
cost a night's backup. The newest backup comes from the manifests in storage, the only
record that a backup really exists. The trigger's period claim keeps catch-up, cron and
manual runs to one backup per database per period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import structlog
from redis import Redis

from jobs.backup.catalog import newest_usable
from railyard.core.cron import period_around
from railyard.core.errors import RailyardError, one_line
from railyard.core.serializer import SerializerName
from railyard.core.storage import ObjectStore, StorageLocation
from scheduler import trigger
from scheduler.schedule import Entry

log = structlog.get_logger()

# Time a scheduled backup is given beyond its period before it counts as missing.
CATCH_UP_GRACE = timedelta(hours=2)


def is_overdue(entry: Entry, newest_finished: datetime | None, now: datetime) -> bool:
    """True when no backup finished within one period of ``entry``'s cron plus the grace."""
    if newest_finished is None:
        return True
    if newest_finished.tzinfo is None:
        newest_finished = newest_finished.replace(tzinfo=UTC)
    start, end = period_around(entry.cron, entry.timezone, now)
    return now - newest_finished > (end - start) + CATCH_UP_GRACE


def newest_backup(store: ObjectStore, location: StorageLocation, *, environment: str, database: str) -> datetime | None:
    newest = newest_usable(store, location, environment=environment, series=database)
    return newest.finished if newest else None


def catch_up(
    connection: Redis,
    entries: Iterable[Entry],
    *,
    store: ObjectStore,
    location: StorageLocation,
    environment: str,
    now: datetime,
    serializer: SerializerName,
) -> list[trigger.FireResult]:
    """Fire every catch-up entry whose database's newest backup is overdue.

    One database's failure (storage unreachable, job not enqueued) is logged and does not
    stop the others.
    """
    fired = []
    checked = 0
    for entry in entries:
        if not entry.catch_up or entry.subject is None:
            continue
        checked += 1
        try:
            newest = newest_backup(store, location, environment=environment, database=entry.subject)
            if not is_overdue(entry, newest, now):
                continue
            log.warning(
                "backup_overdue",
                entry=entry.id,
                database=entry.subject,
                newest_backup_at=newest.isoformat() if newest else None,
            )
            fired.append(
                trigger.fire(
                    connection, entry, environment=environment, now=now, reason="catch-up", serializer=serializer
                )
            )
        except Exception as exc:
            # Next catch-up pass tries again; the cron runs fire regardless.
            log.error(
                "catch_up_failed", entry=entry.id, error=one_line(exc), exc_info=not isinstance(exc, RailyardError)
            )
    log.info("catch_up_checked", databases=checked, enqueued=sum(f.enqueued for f in fired))
    return fired
