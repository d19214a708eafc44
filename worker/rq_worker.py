"""RailyardWorker: plain rq's forking Worker plus the job registry, job-bound logging and alerts.

Started as ``rq worker --config worker.rq_config --worker-class worker.RailyardWorker``.
Before a job runs, its registry entry sets the timeout and retry budget (whatever the
producer passed); jobs not in the registry are failed without being run. In the work
horse, job_id, queue, func and attempt are bound to every log line, and permanent errors
use up the retry budget so they are not retried. A job that fails for good (no retry
left) raises an alert. A job whose on_success, on_failure or on_stopped callback names
anything not registered for callbacks (railyard.core.registry.CALLBACKS) is refused the same way,
before anything is imported, and so is a job whose arguments do not fit the types its
registry entry declares. The exception text rq stores for a failed job goes through
the redaction layer. A job whose worker was killed is found once its heartbeat is
``WORKER_HEARTBEAT_GRACE_S`` overdue by the check every worker makes of the started
registries every ``WORKER_RESCUE_INTERVAL_S`` (worker/rescue.py), and is retried like any
transient failure, or failed with the reason "abandoned". A job whose work horse alone was
killed (the OOM killer's usual pick) is retried with the meta the horse saved, such as the
audio job's claim on its row. When Redis goes away after start-up, the worker and its
work horse wait up to ``REDIS_RECONNECT_TIMEOUT_S`` for it (railyard.core.reconnect) instead
of exiting and stranding the running job.

Jobs are read with the serializer RAILYARD_SERIALIZER names, whatever serializer rq's
command line passes; a job written with another one is refused without being run (with
json: without being unpickled).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import redis
import structlog
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.queue import Queue
from rq.serializers import DefaultSerializer, Serializer, resolve_serializer
from rq.worker import Worker

from railyard.core import registry
from railyard.core import serializer as job_serializer
from railyard.core.alerts import Alert, send_alert
from railyard.core.errors import ConfigError, first_line
from railyard.core.failed_jobs import error_summary
from railyard.core.job_arguments import JobArgumentError
from railyard.core.liveness import record_worker_seen
from railyard.core.reconnect import keep_reconnecting
from railyard.core.redact import redactor
from railyard.core.settings import Settings
from railyard.core.worker_config import WorkerConfig
from railyard.ops import metrics
from worker.drain import draining_problem
from worker.orphans import sweep_once_per_interval
from worker.rescue import rescue_abandoned

log = structlog.get_logger()

ABANDONED_REASON = (
    "abandoned: the worker running this job stopped (killed, out of memory or redeployed without enough "
    "drainingSeconds) and no retry was left"
)


class RailyardWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any):
        self.settings = Settings.from_env()  # validated once by worker.rq_config; read once here
        self.serializer_name = self.settings.serializer
        chosen = job_serializer.rq_serializer(self.serializer_name)
        _check_command_line_serializer(kwargs.get("serializer"), chosen, self.serializer_name)
        kwargs["serializer"] = chosen
        self.tuning = WorkerConfig.from_env()  # before rq's __init__, which reads dequeue_timeout
        super().__init__(*args, **kwargs)
        for queue in self.queues:  # rq's command line built them with its own --serializer
            queue.serializer = chosen
        self._alerted: set[str] = set()
        self._main_pid = os.getpid()  # the work horse inherits this object; only the worker ticks
        self._next_tick = 0.0
        self.push_exc_handler(self._on_exception)

    @property
    def dequeue_timeout(self) -> int:
        """An idle worker wakes every rescue interval (rq's own: every worker TTL - 15 s)."""
        return min(int(super().dequeue_timeout), self.tuning.rescue_interval_s)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline=pipeline)
        if pipeline is None:  # not inside rq's own heartbeat transaction
            self._tick()

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        """A busy worker also rescues other workers' abandoned jobs, between its own heartbeats."""
        super().maintain_heartbeats(job, execution)
        self._tick()

    def _tick(self) -> None:
        """Once per rescue interval: say this worker is alive, and rescue abandoned jobs."""
        if os.getpid() != self._main_pid or time.monotonic() < self._next_tick:
            return
        self._next_tick = time.monotonic() + self.tuning.rescue_interval_s
        try:
            record_worker_seen(self.connection, datetime.now(UTC))
            rescue_abandoned(self.connection, self.queues, time.time(), self._exc_handlers)
            self._restart_scheduler_if_free()
        except redis.RedisError as exc:  # the next interval tries again
            log.warning("rescue_check_failed", error=str(exc))

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """Once registered with Redis, wait out later Redis restarts rather than exit mid-job."""
        super().bootstrap(*args, **kwargs)
        if self.tuning.metrics_port:
            metrics.serve(self.settings, self.tuning.metrics_port)
            log.info("metrics_serving", port=self.tuning.metrics_port, path="/metrics")
        keep_reconnecting(self.connection, self.settings.redis_reconnect_timeout_s)
        problem = draining_problem(os.environ, registry.LONGEST_TIMEOUT_S)
        if problem:
            log.warning("draining_window_short", problem=problem)

    def run_maintenance_tasks(self) -> None:
        """rq's registry cleanup, then put back jobs a dead worker took off a queue but never started."""
        super().run_maintenance_tasks()
        try:
            sweep_once_per_interval(
                self.connection,
                [queue.name for queue in self.queues],
                now=datetime.now(UTC),
                grace_s=self.tuning.heartbeat_grace_s,
                interval_s=int(self.maintenance_interval),
            )
        except redis.RedisError as exc:  # the next interval tries again
            log.warning("orphan_sweep_failed", error=str(exc))

    def _restart_scheduler_if_free(self) -> None:
        """Take over the delayed-retry scheduler of a dead worker once its lock lapses (61 s), as rq's
        maintenance does every 10 minutes: a rescued job's retry is then not held up that long."""
        scheduler = self.scheduler
        if scheduler is None or self.last_cleaned_at is None:
            return
        process = getattr(scheduler, "_process", None)
        if process is None or not process.is_alive():
            scheduler.acquire_locks(auto_start=True)

    def execute_job(self, job: Job, queue: Queue) -> None:
        if not job_serializer.is_readable(job):
            self._refuse(job, queue, job_serializer.unreadable_reason(self.serializer_name))
            return
        spec = registry.spec_for(job.func_name or "")
        if spec is None:
            self._refuse(job, queue, _not_registered_reason(job.func_name))
            return
        unknown = registry.unregistered_callbacks(job)
        if unknown:
            self._refuse(job, queue, _callbacks_reason(unknown))
            return
        try:
            registry.check_job_arguments(job, spec)
        except JobArgumentError as exc:
            self._refuse(job, queue, f"refused: {exc}")
            return
        registry.apply_policy(job, spec, self.tuning.retry_backoff_scale)
        job.save(include_meta=True)
        super().execute_job(job, queue)

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        structlog.contextvars.bind_contextvars(
            job_id=job.id, queue=queue.name, func=job.func_name, attempt=registry.attempt_number(job)
        )
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            structlog.contextvars.clear_contextvars()

    def get_heartbeat_ttl(self, job: Job, *args: Any, **kwargs: Any) -> int:
        """Heartbeats come every job-monitoring interval: a job silent for that plus the grace is abandoned.

        rq's forking worker otherwise keeps a started job registered for its whole timeout
        (three hours for a backup) after its worker died.
        """
        if job.timeout == -1:
            return int(super().get_heartbeat_ttl(job, *args, **kwargs))
        return int(self.job_monitoring_interval) + self.tuning.heartbeat_grace_s

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """Read back the meta the dead horse saved: rq schedules the retry by saving this process's copy."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        job.get_meta(refresh=True)

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """rq stores ``exc_string`` in Redis (the job and its result): it goes through the redaction layer first."""
        if isinstance(kwargs.get("exc_string"), str):
            kwargs["exc_string"] = redactor(extra=self.settings.secrets)(kwargs["exc_string"])
        final = not (job.retries_left and job.retries_left > 0)
        stopped = getattr(self, "_stopped_job_id", None) == job.id
        attempts = registry.attempt_number(job)
        super().handle_job_failure(job, queue, *args, **kwargs)
        if final and not stopped and job.id not in self._alerted:
            self._alert_failed(job, error_summary(kwargs.get("exc_string", "")) or "failed", attempts)

    def _on_exception(
        self, job: Job, exc_type: type[BaseException], exc_value: BaseException, tb: TracebackType | None
    ) -> bool:
        """Permanent errors use up the retry budget; a final failure raises an alert."""
        spec = registry.spec_for(job.func_name or "")
        retry = spec is not None and spec.is_retryable(exc_value)
        attempts = registry.attempt_number(job)  # before a permanent error zeroes the budget it is counted from
        if not retry and job.retries_left:
            job.retries_left = 0
        will_retry = bool(retry and job.retries_left)
        error = first_line(exc_value)
        if isinstance(exc_value, AbandonedJobError):
            error = ABANDONED_REASON if not will_retry else "abandoned: the worker running this job stopped"
        log.error(
            "job_failed",
            job_id=job.id,
            func=job.func_name,
            error=error,
            error_type=exc_type.__name__,
            will_retry=will_retry,
        )
        if not will_retry:
            if getattr(exc_value, "alert_sent", False):
                self._alerted.add(job.id)  # the job reported this failure itself, in more detail
            else:
                self._alert_failed(job, error, attempts)
        return True  # let the next handler (rq's default: move to failed registry) run

    def _alert_failed(self, job: Job, error: str, attempts: int) -> None:
        self._alerted.add(job.id)
        try:
            environment = Settings.from_env().environment
        except ConfigError:  # the alert must go out even with broken settings
            environment = "unknown"
        func = job_serializer.func_label(job)
        send_alert(
            Alert(
                "job_failed",
                f"job {func} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {error}",
                environment,
                {
                    "job_id": job.id,
                    "queue": job.origin,
                    "func": func,
                    "attempts": attempts,
                    "error": error,
                    "kwargs": job_serializer.job_kwargs(job),
                },
            )
        )

    def _refuse(self, job: Job, queue: Queue, reason: str) -> None:
        log.error("job_refused", job_id=job.id, queue=queue.name, func=job_serializer.func_label(job), reason=reason)
        job.retries_left = None
        registry.drop_callbacks(job)  # nothing the producer named may run, not even on the way to failed
        self.handle_job_failure(job, queue=queue, exc_string=reason)


def _not_registered_reason(func_name: str | None) -> str:
    return (
        f"refused: {func_name!r} is not a Railyard job; only functions in railyard.core.registry run on "
        f"Railyard's queues ({', '.join(sorted(registry.REGISTRY))})"
    )


def _callbacks_reason(names: list[str]) -> str:
    allowed = ", ".join(sorted(registry.CALLBACKS)) or "none"
    return (
        f"refused: the job names callbacks that are not registered for callbacks ({', '.join(map(repr, names))}); "
        f"nothing was run. Callbacks allowed on Railyard's queues: {allowed}"
    )


def _check_command_line_serializer(given: Serializer | str | None, chosen: Serializer, name: str) -> None:
    """Refuse ``rq worker --serializer X`` that disagrees with RAILYARD_SERIALIZER (rq's default is no choice)."""
    if given is None or resolve_serializer(given) in (DefaultSerializer, chosen):
        return
    raise ConfigError(
        [
            f"rq worker --serializer {given!r} disagrees with RAILYARD_SERIALIZER={name}; drop --serializer "
            "and set RAILYARD_SERIALIZER (pickle or json) the same on every producer and Railyard process"
        ]
    )
