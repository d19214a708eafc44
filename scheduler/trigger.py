"""Fire a schedule entry: enqueue its job for the current period, once, with the registry's policy.

The work id names the entry's work in the period that contains ``now`` (the period
starts at the entry's last cron run at or before ``now``), so the cron run, a catch-up,
a manual run and a second scheduler all compute the same id and only one of them
enqueues. The job goes through ``railyard.core.client.enqueue``, so it gets its timeout, retries
and failure TTL from ``railyard.core.registry`` (rq-scheduler's ``cron()`` would pass neither), and
is written with the caller's serializer.

A period that comes round while the entry's previous job is still queued, running or
waiting for a retry is folded into it: nothing is enqueued, ``schedule_fire_folded`` is
logged and the entry's folded count goes up. So a backup slower than its period never
builds a queue: at most one of each entry's jobs waits. (``railyard schedule run`` and
``railyard backup --enqueue`` are asked for explicitly and are not folded.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from redis import Redis
from rq.job import Job

from railyard.core import client
from railyard.core.cron import period_around
from railyard.core.serializer import SerializerName
from scheduler import runs
from scheduler.claims import Claims
from scheduler.schedule import Entry

log = structlog.get_logger()

# A claim outlives its period by this much, so a late trigger still finds it.
CLAIM_MARGIN = timedelta(days=1)
FOLDING_REASONS = frozenset({"cron", "catch-up"})  # what fires by itself; a person asking is not folded


@dataclass(frozen=True)
class FireResult:
    entry_id: str
    job_id: str
    period_start: datetime
    enqueued: bool  # False: this period's work had already been enqueued, or was folded
    folded_into: str | None = None  # the earlier job still queued or running that this period was folded into


def fire(
    connection: Redis, entry: Entry, *, environment: str, now: datetime, reason: str, serializer: SerializerName
) -> FireResult:
    """Enqueue ``entry``'s job for the period containing ``now`` unless that work was already enqueued."""
    start, end = period_around(entry.cron, entry.timezone, now)
    job_id = entry.work_id(environment, start)
    if reason in FOLDING_REASONS:
        last = runs.read(connection, environment, entry.id, serializer=serializer)
        if last is not None and last.job_id != job_id and last.active:
            total = runs.count_folded(connection, environment, entry.id)
            log.warning(
                "schedule_fire_folded",
                entry=entry.id,
                job_id=job_id,
                folded_into=last.job_id,
                folded_into_status=last.outcome,
                folded_total=total,
                reason=reason,
            )
            return FireResult(entry.id, job_id, start, enqueued=False, folded_into=last.job_id)
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
