"""The last run of each schedule entry, recorded in Redis when it enqueues work.

The outcome is read from the RQ job itself when asked, so it follows the job through
queued, started, finished or failed without the scheduler having to watch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from railyard.serializer import SerializerName, rq_serializer

LAST_RUN_PREFIX = "railyard:schedule:last-run:"
LAST_RUN_TTL_S = 400 * 24 * 3600  # outlives any sensible cron period


@dataclass(frozen=True)
class LastRun:
    fired_at: datetime
    reason: str  # cron | catch-up | manual
    job_id: str
    outcome: str  # the job's RQ status, or "expired" once RQ has dropped it


def _key(environment: str, entry_id: str) -> str:
    return f"{LAST_RUN_PREFIX}{environment}:{entry_id}"


def record(connection: Redis, environment: str, entry_id: str, *, fired_at: datetime, reason: str, job_id: str) -> None:
    key = _key(environment, entry_id)
    with connection.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"fired_at": fired_at.astimezone(UTC).isoformat(), "reason": reason, "job_id": job_id})
        pipe.expire(key, LAST_RUN_TTL_S)
        pipe.execute()


def read(connection: Redis, environment: str, entry_id: str, *, serializer: SerializerName) -> LastRun | None:
    raw = {_text(k): _text(v) for k, v in connection.hgetall(_key(environment, entry_id)).items()}
    if not {"fired_at", "reason", "job_id"} <= raw.keys():
        return None
    return LastRun(
        fired_at=datetime.fromisoformat(raw["fired_at"]),
        reason=raw["reason"],
        job_id=raw["job_id"],
        outcome=job_outcome(connection, raw["job_id"], serializer=serializer),
    )


def job_outcome(connection: Redis, job_id: str, *, serializer: SerializerName) -> str:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=rq_serializer(serializer))
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return "expired"
    return "unknown" if status is None else str(getattr(status, "value", status))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
