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

from railyard.core.serializer import SerializerName, rq_serializer

LAST_RUN_PREFIX = "railyard:schedule:last-run:"
FOLDED_PREFIX = "railyard:schedule:folded:"
LAST_RUN_TTL_S = 400 * 24 * 3600  # outlives any sensible cron period
# A job in one of these states will still run (or is running): a new period's work waits for it.
ACTIVE_OUTCOMES = frozenset({"queued", "started", "scheduled", "deferred"})


@dataclass(frozen=True)
class LastRun:
    fired_at: datetime
    reason: str  # cron | catch-up | manual
    job_id: str
    outcome: str  # the job's RQ status, or "expired" once RQ has dropped it
    started_at: datetime | None = None  # when the job's latest attempt started (UTC)
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.outcome in ACTIVE_OUTCOMES

    def duration_s(self, now: datetime) -> float | None:
        """How long the job ran, or has been running; None before it started."""
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at and self.outcome not in ACTIVE_OUTCOMES else now
        return max(0.0, (end - self.started_at).total_seconds())


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
    job = _fetch(connection, raw["job_id"], serializer)
    return LastRun(
        fired_at=datetime.fromisoformat(raw["fired_at"]),
        reason=raw["reason"],
        job_id=raw["job_id"],
        outcome=_outcome(job),
        started_at=_utc(job.started_at) if job else None,
        ended_at=_utc(job.ended_at) if job else None,
    )


def job_outcome(connection: Redis, job_id: str, *, serializer: SerializerName) -> str:
    return _outcome(_fetch(connection, job_id, serializer))


def count_folded(connection: Redis, environment: str, entry_id: str) -> int:
    """Count one more period folded into an earlier one's still running work; the new total."""
    key = f"{FOLDED_PREFIX}{environment}:{entry_id}"
    with connection.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, LAST_RUN_TTL_S)
        total, _ = pipe.execute()
    return int(total)


def folded(connection: Redis, environment: str, entry_id: str) -> int:
    value = connection.get(f"{FOLDED_PREFIX}{environment}:{entry_id}")
    return int(value) if value is not None else 0


def _fetch(connection: Redis, job_id: str, serializer: SerializerName) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=rq_serializer(serializer))
    except NoSuchJobError:
        return None


def _outcome(job: Job | None) -> str:
    if job is None:
        return "expired"
    status = job.get_status(refresh=False)
    return "unknown" if status is None else str(getattr(status, "value", status))


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
