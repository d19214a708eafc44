"""Fire a schedule entry: enqueue its job for the current period, once, with the registry's policy.

The work id names the entry's work in the period that contains ``now`` (the period
starts at the entry's last cron run at or before ``now``), so the cron run, a catch-up,
a manual run and a second scheduler all compute the same id and only one of them
enqueues. The job goes through ``jobs.client.enqueue``, so it gets its timeout, retries
and failure TTL from ``jobs.registry`` (rq-scheduler's ``cron()`` would pass neither), and
is written with the caller's serializer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from redis import Redis
from rq.job import Job

from jobs import client
from railyard.serializer import SerializerName
from scheduler import runs
from scheduler.claims import Claims
from scheduler.cron import period_around
from scheduler.schedule import Entry

log = structlog.get_logger()

# A claim outlives its period by this much, so a late trigger still finds it.
CLAIM_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class FireResult:
    entry_id: str
    job_id: str
    period_start: datetime
    enqueued: bool  # False: this period's work had already been enqueued


def fire(
    connection: Redis, entry: Entry, *, environment: str, now: datetime, reason: str, serializer: SerializerName
) -> FireResult:
    """Enqueue ``entry``'s job for the period containing ``now`` unless that work was already enqueued."""
    start, end = period_around(entry.cron, entry.timezone, now)
    job_id = entry.work_id(environment, start)
    claims = Claims(connection)
    token = claims.claim(job_id, now=now.timestamp(), ttl_s=int((end - now + CLAIM_MARGIN).total_seconds()))
    if token is None or Job.exists(job_id, connection=connection):
        if token is not None:
            claims.confirm(job_id)
        log.info("schedule_fire_deduplicated", entry=entry.id, job_id=job_id, reason=reason)
        return FireResult(entry.id, job_id, start, enqueued=False)
    try:
        job = client.enqueue(entry.func, connection, job_id=job_id, serializer=serializer, **entry.kwargs)
    except BaseException:
        claims.release(job_id, token)
        raise
    claims.confirm(job_id)
    runs.record(connection, environment, entry.id, fired_at=now, reason=reason, job_id=job_id)
    log.info("schedule_fired", entry=entry.id, job_id=job.id, func=entry.func, queue=job.origin, reason=reason)
    return FireResult(entry.id, job_id, start, enqueued=True)
