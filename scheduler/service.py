"""The scheduler process: rq-scheduler's Scheduler, made safe to restart and to run twice.

On top of rq-scheduler it changes five things:

- at start, the declared schedule is reconciled with what is registered (under the
  scheduler lock), so restarts never duplicate or leave stale entries; an entry found
  missing later (Redis lost its data) is registered again at the next pass;
- a due Railyard entry is not moved to a queue as it is; it fires a trigger that enqueues
  the real job once per period with the registry's policy, then is scheduled again at
  its next run, computed in its time zone;
- the lock is owner-checked, so a scheduler whose lock expired cannot free another's;
- catch-up runs at start and every ``catch_up_interval_s``;
- SIGTERM and SIGINT finish the current pass, release the lock and exit 0.

Jobs that are not Railyard entries (``scheduler.enqueue_at(...)`` by an application) are
moved to their queues exactly as rq-scheduler does; one written with another serializer
than RAILYARD_SERIALIZER is moved without being read, and the worker refuses it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import redis
import structlog
from rq.job import Job
from rq_scheduler import Scheduler

from railyard.core import serializer as job_serializer
from railyard.core.cron import next_run
from railyard.core.errors import LockBusyError, RailyardError, one_line
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from railyard.core.storage import open_backup_store
from scheduler import catch_up, registration, trigger
from scheduler.lock import RedisLock
from scheduler.schedule import Entry

log = structlog.get_logger()

# rq-scheduler lets its lock live for one interval plus this much.
LOCK_MARGIN_S = 10


class RailyardScheduler(Scheduler):
    def __init__(
        self,
        connection: redis.Redis,
        *,
        settings: Settings,
        config: ScheduleConfig,
        entries: Sequence[Entry],
        clock: Callable[[], float] = time.time,
    ):
        # rq-scheduler passes rq no serializer: its job class supplies RAILYARD_SERIALIZER's.
        super().__init__(
            connection=connection, interval=config.interval_s, job_class=job_serializer.job_class(settings.serializer)
        )
        self.settings = settings
        self.serializer_name = settings.serializer
        self.config = config
        self.entries = tuple(entries)
        self.environment = settings.environment
        self.clock = clock
        self.stop_requested = threading.Event()
        self._lock = RedisLock(connection, self.scheduler_lock_key, int(config.interval_s) + LOCK_MARGIN_S)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def acquire_lock(self) -> bool:
        self._lock_acquired = self._lock.acquire()
        return bool(self._lock_acquired)

    def remove_lock(self) -> None:
        self._lock.release()
        self._lock_acquired = False

    def get_jobs_to_queue(self, with_times: bool = False) -> Any:
        return self.get_jobs(until=self.clock(), with_times=with_times)

    def enqueue_jobs(self) -> list[Job]:
        due = list(self.get_jobs_to_queue())
        for job in due:
            self.enqueue_job(job)
        return due

    def enqueue_job(self, job: Job) -> None:
        if not job_serializer.is_readable(job):
            self._move_unreadable(job)
            return
        if registration.META_KEY not in job.meta:
            super().enqueue_job(job)
            return
        entry = registration.entry_from_meta(job.meta, self.environment)
        if entry is None:
            return  # another environment's entry: its own scheduler fires it
        now = self.now()
        try:
            trigger.fire(
                self.connection,
                entry,
                environment=self.environment,
                now=now,
                reason="cron",
                serializer=self.serializer_name,
            )
        except Exception as exc:
            if _is_transient(exc):
                log.warning("schedule_fire_retrying", entry=entry.id, error=one_line(exc))
                return  # still due: the next pass tries again
            # Another try cannot help: skip to the next run rather than fail every pass.
            traceback = not isinstance(exc, RailyardError)
            log.error("schedule_fire_failed", entry=entry.id, error=one_line(exc), exc_info=traceback)
        registration.reschedule(self.connection, job.id, next_run(entry.cron, entry.timezone, now))

    def _move_unreadable(self, job: Job) -> None:
        """Hand a job written with another serializer to its queue unread: the worker refuses it visibly."""
        log.error("scheduled_job_unreadable", job_id=job.id, queue=job.origin, serializer=self.serializer_name)
        self.get_queue_for_job(job).enqueue_job(job)
        self.connection.zrem(self.scheduled_jobs_key, job.id)

    def reconcile(self) -> registration.ReconcileReport | None:
        """Register the declared schedule, waiting for the scheduler lock (None if asked to stop first)."""
        deadline = time.monotonic() + self._lock.ttl_s + LOCK_MARGIN_S
        while not self.acquire_lock():
            if self.stop_requested.is_set():
                return None
            if time.monotonic() > deadline:
                waited_s = self._lock.ttl_s + LOCK_MARGIN_S
                raise LockBusyError(
                    f"the scheduler lock {self.scheduler_lock_key!r} stayed taken for {waited_s}s; "
                    "another scheduler is stuck holding it: stop it or delete the key"
                )
            self.stop_requested.wait(0.05)
        try:
            report = self._register()
        finally:
            self.remove_lock()
        log.info(
            "schedule_reconciled",
            kept=len(report.kept),
            added=len(report.added),
            replaced=len(report.replaced),
            removed=len(report.removed),
        )
        return report

    def _register(self) -> registration.ReconcileReport:
        """Make Redis hold the declared schedule (the caller holds the scheduler lock)."""
        return registration.reconcile(
            self.connection, self.entries, environment=self.environment, now=self.now(), serializer=self.serializer_name
        )

    def catch_up(self) -> list[trigger.FireResult]:
        store, location = open_backup_store(self.settings)
        return catch_up.catch_up(
            self.connection,
            self.entries,
            store=store,
            location=location,
            environment=self.environment,
            now=self.now(),
            serializer=self.serializer_name,
        )

    def run_once(self) -> None:
        """One pass under the lock: re-register lost entries, then fire due ones."""
        self.heartbeat()
        if self.acquire_lock():
            try:
                lost = registration.missing(self.connection, self.entries, environment=self.environment)
                if lost:
                    # Redis lost its data, or a scheduler with other settings cancelled them.
                    log.warning("schedule_entries_missing", entries=lost)
                    self._register()
                self.enqueue_jobs()
            finally:
                self.remove_lock()
        else:
            log.debug("scheduler_lock_busy")

    def run(self, burst: bool = False) -> None:
        self._install_signal_handlers()
        self.register_birth()
        log.info(
            "scheduler_started",
            name=self.name,
            entries=len(self.entries),
            interval_s=self.config.interval_s,
            timezone=self.config.timezone,
        )
        try:
            if self.reconcile() is None:
                return
            next_catch_up = time.monotonic()
            while not self.stop_requested.is_set():
                started = time.monotonic()
                try:
                    self.run_once()
                    if self.config.catch_up and started >= next_catch_up:
                        next_catch_up = started + self.config.catch_up_interval_s
                        self.catch_up()
                except redis.RedisError as exc:
                    log.warning("scheduler_redis_unavailable", error=one_line(exc))
                if burst:
                    break
                self.stop_requested.wait(max(0.0, self.config.interval_s - (time.monotonic() - started)))
        finally:
            self.remove_lock()
            try:
                self.register_death()
            except redis.RedisError as exc:
                log.warning("scheduler_death_not_registered", error=one_line(exc))
            log.info("scheduler_stopped", name=self.name)

    def _install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("scheduler_stopping", signal=signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)


def _is_transient(exc: BaseException) -> bool:
    """Worth another try at the next pass (Redis, network, storage) rather than skipping a run."""
    if isinstance(exc, RailyardError):
        return exc.retryable
    return isinstance(exc, (redis.RedisError, OSError))
