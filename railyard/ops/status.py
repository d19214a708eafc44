"""What ``railyard status`` reports: queues, workers, failed jobs, schedules and backup freshness.

Collection talks to Redis and storage; :func:`problems` is the pure verdict that decides
the exit code. A service that cannot be reached is reported as a problem, not a crash, so
a monitor running the command always gets an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq.job import Job
from rq.queue import Queue
from rq.worker import BaseWorker, Worker

from jobs.backup.staleness import Freshness, copy_freshness, describe_stale, freshness
from railyard.core.alert_config import AlertConfig
from railyard.core.durations import format_duration
from railyard.core.errors import RailyardError
from railyard.core.failed_jobs import count_failed, describe, failed_jobs
from railyard.core.liveness import last_worker_seen
from railyard.core.serializer import SerializerName, func_label, rq_serializer
from railyard.core.settings import DEFAULT_QUEUES, Settings
from railyard.ops.status_config import StatusConfig

NEWEST_FAILED_SHOWN = 5


@dataclass
class Status:
    generated_at: datetime
    queues: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, Any] = field(default_factory=lambda: {"count": 0, "newest": []})
    scheduled: list[dict[str, Any]] = field(default_factory=list)
    backups: list[Freshness] = field(default_factory=list)
    copies: list[Freshness] | None = None  # freshness at BACKUP_COPY_STORAGE_URL; None without a copy
    errors: list[str] = field(default_factory=list)  # parts that could not be collected
    stale_after_s: int = 0
    redis_read: bool = False
    worker_last_seen: datetime | None = None  # newest heartbeat of any worker, alive or gone
    checks: StatusConfig = field(default_factory=StatusConfig)

    def problems(self) -> list[str]:
        return problems(self)

    def warnings(self) -> list[str]:
        """Worth a look, not unhealthy: schedule entries whose job takes longer than their period."""
        return [str(s["warning"]) for s in self.scheduled if s.get("warning")]

    def as_dict(self) -> dict[str, Any]:
        found = self.problems()
        return {
            "healthy": not found,
            "problems": found,
            "warnings": self.warnings(),
            "generated_at": self.generated_at.isoformat(),
            "queues": self.queues,
            "workers": self.workers,
            "failed": self.failed,
            "scheduled": self.scheduled,
            "backups": [b.as_dict() for b in self.backups],
            "copies": None if self.copies is None else [c.as_dict() for c in self.copies],
            "backup_stale_after_s": self.stale_after_s,
            "worker_last_seen_s": _age_s(self.worker_last_seen, self.generated_at),
        }


def problems(status: Status) -> list[str]:
    """Why ``status`` is unhealthy (empty when healthy): stale backups, failed verifications,
    no worker seen, schedule entries no scheduler registered, and anything that could not be checked."""
    stale_after = timedelta(seconds=status.stale_after_s)
    found = list(status.errors)
    if status.redis_read:
        found += _worker_problems(status) + _schedule_problems(status)
    for item in status.backups:
        if item.stale:
            found.append(describe_stale(item, stale_after))
        if item.verification_failed and item.verification:
            found.append(
                f"the latest verification of database {item.database} failed "
                f"({item.verification.get('backup_id')}, {item.verification.get('verified_at', '')[:19]})"
            )
    found += [describe_stale(item, stale_after, " at the copy") for item in status.copies or [] if item.stale]
    return found


def _worker_problems(status: Status) -> list[str]:
    limit = status.checks.worker_missing_after
    if limit is None or any(w.get("alive") for w in status.workers):
        return []
    seen = status.worker_last_seen
    if seen is not None and status.generated_at - seen <= limit:
        return []
    when = "ever" if seen is None else f"for {format_duration(status.generated_at - seen)}"
    return [
        f"no worker has been seen {when} (STATUS_WORKER_MISSING_AFTER={format_duration(limit)}): start the "
        "worker service, or set STATUS_WORKER_MISSING_AFTER=off where no worker is expected"
    ]


def _schedule_problems(status: Status) -> list[str]:
    if not status.checks.require_schedule:
        return []
    missing = [e["id"] for e in status.scheduled if e.get("state") == "not registered"]
    if not missing:
        return []
    return [
        f"schedule entr{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} declared but not registered: "
        "start the scheduler service (python -m scheduler), or set STATUS_REQUIRE_SCHEDULE=false"
    ]


def scheduled_entries(connection: redis.Redis, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """The schedule's entries with their state, next run and last run (as `railyard schedule list`)."""
    from railyard.core import registry
    from railyard.core.schedule_config import ScheduleConfig
    from scheduler import overview
    from scheduler.schedule import build_schedule, targets_from_settings

    declared = build_schedule(ScheduleConfig.from_env(), targets_from_settings(settings), registry.REGISTRY)
    described = overview.describe(
        connection, declared, environment=settings.environment, now=now, serializer=settings.serializer
    )
    return [s.to_dict() for s in described]


def _age_s(when: datetime | None, now: datetime) -> float | None:
    if when is None:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return round((now - when).total_seconds(), 1)


def queue_status(connection: redis.Redis, name: str, now: datetime, *, serializer: SerializerName) -> dict[str, Any]:
    # The registries' counts run rq's cleanup, which fetches jobs: never with another serializer.
    queue = Queue(name, connection=connection, serializer=rq_serializer(serializer))
    head = queue.get_job_ids(0, 1)
    oldest = Job.fetch(head[0], connection=connection, serializer=queue.serializer) if head else None
    return {
        "name": name,
        "depth": queue.count,
        "oldest_waiting_s": _age_s(oldest.enqueued_at, now) if oldest else None,
        "started": queue.started_job_registry.count,
        "scheduled": queue.scheduled_job_registry.count,
        "failed": queue.failed_job_registry.count,
    }


def worker_status(worker: BaseWorker, now: datetime) -> dict[str, Any]:
    job = worker.get_current_job()
    return {
        "name": worker.name,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "state": worker.get_state(),
        "queues": worker.queue_names(),
        "alive": True,  # rq forgets a worker whose heartbeat stopped
        "last_heartbeat_s": _age_s(worker.last_heartbeat, now),
        "current_job": job.id if job else None,
        "current_func": func_label(job) if job else None,
        "since": job.started_at.replace(tzinfo=UTC).isoformat() if job and job.started_at else None,
        "running_s": _age_s(job.started_at, now) if job else None,
    }


def collect(settings: Settings, config: AlertConfig, now: datetime, checks: StatusConfig | None = None) -> Status:
    status = Status(
        generated_at=now, stale_after_s=int(config.stale_after.total_seconds()), checks=checks or StatusConfig()
    )
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        serializer = settings.serializer
        status.queues = [queue_status(connection, name, now, serializer=serializer) for name in DEFAULT_QUEUES]
        workers = Worker.all(connection=connection, serializer=rq_serializer(serializer))
        status.workers = [worker_status(w, now) for w in workers]
        heartbeats = [w.last_heartbeat.replace(tzinfo=UTC) for w in workers if w.last_heartbeat]
        status.worker_last_seen = max([*heartbeats, *filter(None, [last_worker_seen(connection)])], default=None)
        newest = failed_jobs(connection, serializer=serializer)[:NEWEST_FAILED_SHOWN]
        status.failed = {
            "count": count_failed(connection, serializer=serializer),
            "newest": [describe(j).as_dict() for j in newest],
        }
        status.scheduled = scheduled_entries(connection, settings, now)
        status.redis_read = True
    except redis.RedisError as exc:
        status.errors.append(f"Redis could not be read ({type(exc).__name__}: {' '.join(str(exc).split())})")
    finally:
        connection.close()
    try:
        status.backups = freshness(settings, config, now)
    except RailyardError as exc:
        status.errors.append(f"backups could not be listed ({' '.join(str(exc).split())})")
    try:
        status.copies = copy_freshness(settings, config, now)
    except RailyardError as exc:
        status.errors.append(f"the copy's backups could not be listed ({' '.join(str(exc).split())})")
    return status
