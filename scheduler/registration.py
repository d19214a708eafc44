"""Schedule entries as rq-scheduler jobs: register, read back, cancel, and reconcile at start.

Each entry is one job in rq-scheduler's sorted set (``rq:scheduler:scheduled_jobs``),
scored with its next run, under the stable id ``railyard-schedule-{environment}-{entry}``,
with the entry itself in the job's meta. Registering an id that exists replaces it, so
however often schedulers start, each entry is there once. Reconcile keeps registered
entries that are still declared unchanged (with their pending run time), replaces changed
ones and cancels the ones no longer declared. The caller holds the scheduler lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler

from railyard.core import registry
from railyard.core.cron import next_run
from railyard.core.serializer import SerializerName, rq_serializer
from scheduler.schedule import Entry, slug

log = structlog.get_logger()

REGISTERED_PREFIX = "railyard-schedule-"
META_KEY = "railyard_schedule"
SCHEDULED_JOBS_KEY: str = Scheduler.scheduled_jobs_key
QUEUE_BY_KIND = {"backup": "backup", "prune": "retention", "purge": "retention", "verify": "backup"}


def registration_id(environment: str, entry_id: str) -> str:
    return f"{REGISTERED_PREFIX}{slug(environment)}-{entry_id}"


@dataclass(frozen=True)
class Registered:
    entry: Entry
    fingerprint: str
    next_run: datetime
    job_id: str


@dataclass
class ReconcileReport:
    kept: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def entry_meta(entry: Entry, environment: str) -> dict[str, object]:
    return {**entry.to_dict(), "environment": environment, "fingerprint": entry.fingerprint}


def entry_from_meta(meta: dict[str, object], environment: str) -> Entry | None:
    """The entry a registered job carries, or None if it is not one of this environment's."""
    data = meta.get(META_KEY)
    if not isinstance(data, dict) or data.get("environment") != environment:
        return None
    try:
        return Entry.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def registered_entries(connection: Redis, environment: str, *, serializer: SerializerName) -> dict[str, Registered]:
    """This environment's registered entries by entry id.

    An entry written with another serializer reads as not registered, so reconcile replaces it.
    """
    found: dict[str, Registered] = {}
    prefix = registration_id(environment, "")
    for member, score in connection.zscan_iter(SCHEDULED_JOBS_KEY, match=f"{prefix}*"):
        job_id = member.decode()
        try:
            job = Job.fetch(job_id, connection=connection, serializer=rq_serializer(serializer))
        except NoSuchJobError:
            connection.zrem(SCHEDULED_JOBS_KEY, job_id)  # as rq-scheduler does with a job that is gone
            continue
        entry = entry_from_meta(job.meta, environment)
        if entry is None or registration_id(environment, entry.id) != job_id:
            continue
        data = job.meta[META_KEY]
        found[entry.id] = Registered(
            entry=entry,
            fingerprint=str(data.get("fingerprint", "")),
            next_run=datetime.fromtimestamp(score, UTC),
            job_id=job_id,
        )
    return found


def register(
    connection: Redis, entry: Entry, *, environment: str, now: datetime, serializer: SerializerName
) -> datetime:
    """Register (or replace) ``entry`` with its next run after ``now``; returns that run."""
    when = next_run(entry.cron, entry.timezone, now)
    spec = registry.spec_for(entry.func)
    job = Job.create(
        entry.func,
        kwargs=dict(entry.kwargs),
        connection=connection,
        serializer=rq_serializer(serializer),
        id=registration_id(environment, entry.id),
        origin=spec.queue if spec else QUEUE_BY_KIND.get(entry.kind, "backup"),
        meta={META_KEY: entry_meta(entry, environment)},
        status=JobStatus.SCHEDULED,
        description=f"schedule entry {entry.id} ({entry.cron} {entry.timezone})",
    )
    with connection.pipeline() as pipe:
        pipe.delete(job.key)
        job.save(pipeline=pipe)
        pipe.zadd(SCHEDULED_JOBS_KEY, {job.id: when.timestamp()})
        pipe.execute()
    return when


def missing(connection: Redis, entries: Iterable[Entry], *, environment: str) -> list[str]:
    """Ids of declared entries that are not registered (lost with Redis's data, or cancelled)."""
    ids = [entry.id for entry in entries]
    with connection.pipeline(transaction=False) as pipe:
        for entry_id in ids:
            pipe.zscore(SCHEDULED_JOBS_KEY, registration_id(environment, entry_id))
        scores = pipe.execute()
    return [entry_id for entry_id, score in zip(ids, scores, strict=True) if score is None]


def cancel(connection: Redis, job_id: str) -> None:
    with connection.pipeline() as pipe:
        pipe.zrem(SCHEDULED_JOBS_KEY, job_id)
        pipe.delete(Job.key_for(job_id))
        pipe.execute()


def reschedule(connection: Redis, job_id: str, when: datetime) -> None:
    """Move a registered entry to its next run; an entry cancelled meanwhile stays cancelled."""
    connection.zadd(SCHEDULED_JOBS_KEY, {job_id: when.timestamp()}, xx=True)


def reconcile(
    connection: Redis, entries: Iterable[Entry], *, environment: str, now: datetime, serializer: SerializerName
) -> ReconcileReport:
    report = ReconcileReport()
    registered = registered_entries(connection, environment, serializer=serializer)
    declared = {entry.id: entry for entry in entries}
    for entry_id, entry in declared.items():
        current = registered.get(entry_id)
        if current is not None and current.fingerprint == entry.fingerprint:
            report.kept.append(entry_id)
            continue
        when = register(connection, entry, environment=environment, now=now, serializer=serializer)
        (report.replaced if current else report.added).append(entry_id)
        log.info(
            "schedule_entry_registered",
            entry=entry_id,
            cron=entry.cron,
            timezone=entry.timezone,
            next_run=when.isoformat(),
        )
    for entry_id, current in registered.items():
        if entry_id not in declared:
            cancel(connection, current.job_id)
            report.removed.append(entry_id)
            log.info("schedule_entry_cancelled", entry=entry_id, cron=current.entry.cron)
    return report
