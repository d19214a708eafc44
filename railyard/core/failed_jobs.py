"""Failed jobs across Railyard's queues, on rq's own FailedJobRegistry: list, show, retry, purge.

Jobs are read with the serializer RAILYARD_SERIALIZER names; a job written with another one
is listed as ``<unreadable>`` (its data is not parsed) and is never retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis import Redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from railyard.core import registry
from railyard.core.errors import NotFoundError, PermanentError
from railyard.core.serializer import SerializerName, func_label, is_readable, job_kwargs, rq_serializer
from railyard.core.settings import DEFAULT_QUEUES

log = structlog.get_logger()


def error_summary(exc_string: str | None) -> str:
    """The one line that says what went wrong: the final exception line of a traceback."""
    lines = [line.rstrip() for line in (exc_string or "").splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        unindented = [line for line in lines if not line.startswith((" ", "\t"))]
        return unindented[-1] if unindented else lines[-1]
    return lines[0]


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    func: str
    failed_at: str | None
    attempts: int
    error: str
    args: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def failed_at(job: Job) -> datetime | None:
    return _as_utc(job.ended_at) or _as_utc(job.enqueued_at) or _as_utc(job.created_at)


def exc_string(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string if result is not None else None) or job.exc_info or ""


def describe(job: Job) -> FailedJob:
    when = failed_at(job)
    return FailedJob(
        id=job.id,
        queue=job.origin,
        func=func_label(job),
        failed_at=when.isoformat() if when else None,
        attempts=registry.attempt_number(job),
        error=error_summary(exc_string(job)),
        args=job_kwargs(job),
    )


def _registries(connection: Redis, queues: Iterable[str], serializer: SerializerName) -> list[FailedJobRegistry]:
    return [FailedJobRegistry(name, connection=connection, serializer=rq_serializer(serializer)) for name in queues]


def failed_jobs(connection: Redis, queues: Iterable[str] = DEFAULT_QUEUES, *, serializer: SerializerName) -> list[Job]:
    """Every failed job still kept on ``queues``, newest failure first."""
    jobs = []
    for reg in _registries(connection, queues, serializer):
        for job in Job.fetch_many(reg.get_job_ids(), connection=connection, serializer=reg.serializer):
            if job is not None:
                jobs.append(job)
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(jobs, key=lambda j: failed_at(j) or oldest, reverse=True)


def count_failed(connection: Redis, queues: Iterable[str] = DEFAULT_QUEUES, *, serializer: SerializerName) -> int:
    return sum(reg.count for reg in _registries(connection, queues, serializer))


def find_failed(
    connection: Redis, job_id: str, queues: Iterable[str] = DEFAULT_QUEUES, *, serializer: SerializerName
) -> tuple[Job, FailedJobRegistry]:
    for reg in _registries(connection, queues, serializer):
        if reg.connection.zscore(reg.key, job_id) is not None:
            try:
                return Job.fetch(job_id, connection=connection, serializer=reg.serializer), reg
            except NoSuchJobError as exc:
                reg.connection.zrem(reg.key, job_id)
                raise NotFoundError(f"failed job {job_id!r} has expired; nothing to retry") from exc
    raise NotFoundError(f"no failed job {job_id!r} on {', '.join(queues)}; see `railyard failed list`")


def retry(connection: Redis, job_id: str, queues: Iterable[str] = DEFAULT_QUEUES, *, serializer: SerializerName) -> Job:
    """Put a failed job back on its queue, with a fresh retry budget from the registry."""
    job, reg = find_failed(connection, job_id, queues, serializer=serializer)
    if not is_readable(job):
        raise PermanentError(
            f"job {job_id} cannot be read with RAILYARD_SERIALIZER={serializer} (its producer used another "
            "serializer); it would be refused again, so it was left in the failed list (purge it instead)"
        )
    if registry.spec_for(job.func_name or "") is None:
        raise PermanentError(
            f"job {job_id} runs {job.func_name!r}, which is not a Railyard job; it would be refused again, "
            "so it was left in the failed list (purge it instead)"
        )
    job.meta.pop(registry.POLICY_META_KEY, None)
    job.save_meta()
    try:
        requeued = reg.requeue(job)
    except InvalidJobOperation as exc:
        raise NotFoundError(f"failed job {job_id!r} was retried or removed meanwhile") from exc
    log.info("failed_job_retried", job_id=job_id, queue=job.origin, func=job.func_name)
    return requeued


def retry_all(
    connection: Redis, queues: Iterable[str] = DEFAULT_QUEUES, *, serializer: SerializerName
) -> tuple[list[str], list[str]]:
    """Retry every failed Railyard job; returns (retried ids, skipped ids)."""
    retried, skipped = [], []
    for job in failed_jobs(connection, queues, serializer=serializer):
        try:
            retry(connection, job.id, queues, serializer=serializer)
            retried.append(job.id)
        except PermanentError:
            skipped.append(job.id)
    return retried, skipped


def purge(
    connection: Redis,
    older_than: timedelta,
    now: datetime,
    queues: Iterable[str] = DEFAULT_QUEUES,
    *,
    serializer: SerializerName,
) -> list[str]:
    """Delete failed jobs whose failure is older than ``older_than``; returns their ids."""
    cutoff = now - older_than
    removed = []
    for reg in _registries(connection, queues, serializer):
        for job_id in reg.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=connection, serializer=reg.serializer)
            except NoSuchJobError:
                reg.connection.zrem(reg.key, job_id)
                continue
            when = failed_at(job)
            if when is not None and when < cutoff:
                reg.remove(job, delete_job=True)
                removed.append(job_id)
    log.info("failed_jobs_purged", count=len(removed), older_than_s=int(older_than.total_seconds()))
    return removed
