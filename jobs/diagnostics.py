"""A job that proves a worker is consuming a queue and applying the registry's policy."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import structlog
from rq import get_current_job

from railyard.core.errors import RetryableError
from railyard.core.registry import attempt_number

log = structlog.get_logger()


def ping(delay_s: float = 0.0) -> dict[str, Any]:
    """Return who ran the job and with which timeout; ``delay_s`` simulates a long job."""
    job = get_current_job()
    log.info("ping_started", delay_s=delay_s)
    if delay_s > 0:
        time.sleep(delay_s)
    log.info("ping_finished")
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job_id": job.id if job else None,
        "timeout": job.timeout if job else None,
    }


def retry_probe() -> dict[str, Any]:
    """Fail the first attempt with a retryable error and succeed on the retry.

    Proves that delayed retries run: the retry waits in RQ's scheduled registry until the
    worker's scheduler (``rq worker --with-scheduler``) moves it back to the queue.
    """
    job = get_current_job()
    attempt = attempt_number(job) if job else 1
    log.info("retry_probe_attempt", attempt=attempt)
    if attempt == 1:
        raise RetryableError("retry probe: the first attempt fails on purpose; the retry after the backoff succeeds")
    return {"attempt": attempt, "job_id": job.id if job else None}


def log_outcome(job: Any, connection: Any, *outcome: Any) -> None:
    """The one registered rq callback (on_success, on_failure or on_stopped): logs the job's outcome.

    Proves that a registered callback runs while any other is refused (railyard.core.registry.CALLBACKS).
    """
    status = "failed" if len(outcome) == 3 else "finished" if outcome else "stopped"
    log.info("job_callback", callback_job_id=getattr(job, "id", None), outcome=status)
