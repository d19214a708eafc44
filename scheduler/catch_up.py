"""Catch-up: back up now a database whose newest backup is overdue.

A scheduler that was down (or a worker that failed) at the cron time would otherwise
cost a night's backup. The newest backup comes from the manifests in storage, the only
record that a backup really exists. The trigger's period claim keeps catch-up, cron and
manual runs to one backup per database per period.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import structlog
from redis import Redis
from rq.queue import Queue
from rq.utils import as_text

from jobs import registry
from jobs.catalog import newest_usable
from jobs.storage import ObjectStore, StorageLocation
from railyard.errors import RailyardError
from railyard.serializer import SerializerName
from scheduler import trigger
from scheduler.cron import period_around
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


def pending_work(connection: Redis, entry: Entry, environment: str) -> str | None:
    """The id of a job of ``entry``, of any period, still waiting, running or waiting for a retry.

    A changed cron gives the same database's work another period id, so the period claim
    alone would let a second catch-up in while the first is still queued or running.
    """
    spec = registry.spec_for(entry.func)
    if spec is None:
        return None
    prefix = entry.work_prefix(environment)
    own = re.compile(re.escape(prefix) + r"\d{8}T\d{4}Z")
    queue = Queue(spec.queue, connection=connection)
    with connection.pipeline(transaction=False) as pipe:
        pipe.lrange(queue.key, 0, -1)
        pipe.zrange(queue.started_job_registry.key, 0, -1)
        pipe.zrange(queue.scheduled_job_registry.key, 0, -1)
        found = pipe.execute()
    for ids in found:
        for raw in ids:
            job_id = as_text(raw).split(":", 1)[0]  # started entries are "<job id>:<execution id>"
            if own.fullmatch(job_id):
                return job_id
    return None


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
            pending = pending_work(connection, entry, environment)
            if pending is not None:
                log.info("catch_up_pending", entry=entry.id, database=entry.subject, job_id=pending)
                start, _ = period_around(entry.cron, entry.timezone, now)
                fired.append(trigger.FireResult(entry.id, pending, start, enqueued=False))
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
                "catch_up_failed", entry=entry.id, error=_first_line(exc), exc_info=not isinstance(exc, RailyardError)
            )
    log.info("catch_up_checked", databases=checked, enqueued=sum(f.enqueued for f in fired))
    return fired


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, RailyardError) else f"{type(exc).__name__}: {text}"
