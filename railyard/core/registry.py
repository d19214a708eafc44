"""The one place that states, for each job function, its queue, timeout and retry policy.

Both the producer API (railyard.core.client) and the worker apply it, so a job enqueued by another
service by string path with no options gets the same timeout and retries as one
enqueued through Railyard. Only functions listed here run on Railyard's queues.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import redis.exceptions
from botocore.exceptions import BotoCoreError
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from railyard.core.errors import PermanentError, RetryableError
from railyard.core.job_arguments import Param, check_arguments

HOUR_S = 3600
DAY_S = 24 * HOUR_S
POLICY_META_KEY = "railyard_policy"

# What a retry can plausibly fix, beyond Railyard's own RetryableError family.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RetryableError,
    ConnectionError,
    TimeoutError,
    JobTimeoutException,
    AbandonedJobError,  # its worker was killed mid-job (a deploy, OOM): another attempt is the cure
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    psycopg.OperationalError,
    BotoCoreError,
)


@dataclass(frozen=True)
class JobSpec:
    func: str
    queue: str
    timeout_s: int
    max_attempts: int = 3
    backoff_s: tuple[int, ...] = (60, 300)
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
    result_ttl_s: int = 7 * DAY_S
    failure_ttl_s: int = 30 * DAY_S
    params: tuple[Param, ...] = ()  # the function's arguments and their kinds, checked before it runs

    def is_retryable(self, exc: BaseException | None) -> bool:
        """Permanent errors never retry; otherwise only the listed transient kinds do."""
        if exc is None or isinstance(exc, PermanentError):
            return False
        return isinstance(exc, self.retry_on)


# Migrations retry only what a later attempt can fix (lock busy, connection lost), never a timeout.
MIGRATION_RETRY_ON: tuple[type[BaseException], ...] = (RetryableError, ConnectionError, psycopg.OperationalError)

BACKUP_PARAMS = (
    Param("database", "str"),
    Param("schema_only", "bool", nullable=False),
    Param("data_only", "bool", nullable=False),
    Param("tables", "str list"),
    Param("exclude_tables", "str list"),
    Param("schemas", "str list"),
    Param("exclude_schemas", "str list"),
    Param("all_databases", "bool", nullable=False),
)
MIGRATION_PARAMS = (
    Param("to", "int"),
    Param("allow_out_of_order", "bool", nullable=False),
    Param("backup", "bool"),
    Param("accept_checksums", "str list"),
)
DRY_RUN = (Param("dry_run", "bool", nullable=False),)

SPECS: tuple[JobSpec, ...] = (
    JobSpec(
        "jobs.diagnostics.ping",
        queue="backup",
        timeout_s=60,
        max_attempts=1,
        params=(Param("delay_s", "number", nullable=False),),
    ),
    JobSpec("jobs.diagnostics.retry_probe", queue="backup", timeout_s=60, max_attempts=2, backoff_s=(1,)),
    JobSpec("jobs.backup.run_backup", queue="backup", timeout_s=3 * HOUR_S, backoff_s=(300, 900), params=BACKUP_PARAMS),
    # Copies to the second destination retry like a backup: a lost connection or a provider outage passes.
    JobSpec(
        "jobs.copy.copy_backup",
        queue="backup",
        timeout_s=3 * HOUR_S,
        max_attempts=4,
        backoff_s=(60, 300, 900),
        params=(Param("key", "str", nullable=False),),
    ),
    JobSpec(
        "jobs.verify.verify_backup",
        queue="backup",
        timeout_s=3 * HOUR_S,
        max_attempts=2,
        backoff_s=(900,),
        params=(Param("backup_id", "str"), Param("database", "str")),
    ),
    JobSpec(
        "jobs.migrate.run_migrations",
        queue="migration",
        timeout_s=HOUR_S,
        retry_on=MIGRATION_RETRY_ON,
        params=MIGRATION_PARAMS,
    ),
    # Backoff outlasts AUDIO_STALE_AFTER_S, so a retry can take over a dead worker's file.
    JobSpec(
        "jobs.audio.process_audio",
        queue="audio",
        timeout_s=30 * 60,
        max_attempts=5,
        backoff_s=(30, 120, 600, 1800),
        params=(Param("audio_file_id", "int or str", nullable=False),),
    ),
    JobSpec(
        "jobs.retention.prune_backups",
        queue="retention",
        timeout_s=HOUR_S,
        max_attempts=3,
        backoff_s=(60, 300),
        params=DRY_RUN,
    ),
    JobSpec(
        "jobs.retention.purge_rows",
        queue="retention",
        timeout_s=2 * HOUR_S,
        max_attempts=3,
        backoff_s=(60, 300),
        params=DRY_RUN,
    ),
    JobSpec("jobs.staleness.check_stale_backups", queue="backup", timeout_s=300, max_attempts=1),
    JobSpec("jobs.summary.send_weekly_summary", queue="backup", timeout_s=300, max_attempts=1),
)

REGISTRY: dict[str, JobSpec] = {spec.func: spec for spec in SPECS}

# Functions a job may name as its on_success / on_failure / on_stopped callback. rq imports
# and calls whatever a job names there, so anything else is refused before the job runs.
CALLBACKS: frozenset[str] = frozenset({"jobs.diagnostics.log_outcome"})
CALLBACK_ATTRIBUTES = ("_success_callback_name", "_failure_callback_name", "_stopped_callback_name")
LONGEST_TIMEOUT_S = max(spec.timeout_s for spec in SPECS)


def spec_for(func_name: str) -> JobSpec | None:
    return REGISTRY.get(func_name)


def check_job_arguments(job: Job, spec: JobSpec) -> None:
    """Raise JobArgumentError (permanent) when ``job``'s arguments do not fit ``spec.params``."""
    check_arguments(spec.func, spec.params, list(job.args or ()), dict(job.kwargs or {}))


def unregistered_callbacks(job: Job) -> list[str]:
    """The callback names of ``job`` that are not in CALLBACKS (read without importing anything)."""
    names = [getattr(job, attribute, None) for attribute in CALLBACK_ATTRIBUTES]
    return [name for name in names if name and name not in CALLBACKS]


def drop_callbacks(job: Job) -> None:
    """Forget ``job``'s callbacks in this process, so rq has nothing to import or call for it."""
    for attribute in CALLBACK_ATTRIBUTES:
        setattr(job, attribute, None)
    job._success_callback = None  # type: ignore[assignment]
    job._failure_callback = None  # type: ignore[assignment]
    job._stopped_callback = None


def require_spec(func_name: str) -> JobSpec:
    spec = spec_for(func_name)
    if spec is None:
        known = ", ".join(sorted(REGISTRY))
        raise PermanentError(f"{func_name!r} is not a Railyard job; known jobs: {known}")
    return spec


def scaled_backoff(backoff_s: tuple[int, ...], scale: float) -> list[int]:
    """Backoffs multiplied by ``scale`` (RAILYARD_RETRY_BACKOFF_SCALE), never below one second."""
    return [max(1, round(b * scale)) for b in backoff_s]


def apply_policy(job: Job, spec: JobSpec, backoff_scale: float = 1.0) -> None:
    """Give ``job`` the registry's timeout and backoffs and, on its first attempt, its retry budget."""
    job.timeout = spec.timeout_s
    job.failure_ttl = spec.failure_ttl_s
    job.result_ttl = spec.result_ttl_s
    job.retry_intervals = scaled_backoff(spec.backoff_s, backoff_scale) if spec.max_attempts > 1 else None
    if POLICY_META_KEY not in job.meta:
        job.retries_left = spec.max_attempts - 1 if spec.max_attempts > 1 else None
        job.meta[POLICY_META_KEY] = {"max_attempts": spec.max_attempts}


def attempt_number(job: Job) -> int:
    """1 on a job's first run, 2 on its first retry, and so on."""
    # RQ counts a retry after an exception only by decrementing retries_left
    # (number_of_retries counts the retries a job asks for by returning Retry).
    max_attempts = (job.meta.get(POLICY_META_KEY) or {}).get("max_attempts")
    if isinstance(max_attempts, int) and job.retries_left is not None:
        return max(1, max_attempts - job.retries_left)
    return (job.number_of_retries or 0) + 1


def will_retry(job: Job | None, exc: BaseException) -> bool:
    """Whether the worker will try ``job`` again after ``exc`` (False outside a worker)."""
    if job is None:
        return False
    spec = spec_for(job.func_name or "")
    return bool(spec is not None and spec.is_retryable(exc) and job.retries_left)
