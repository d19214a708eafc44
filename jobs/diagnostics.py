"""A job that proves a worker is consuming a queue and applying the registry's policy."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import structlog
from rq import get_current_job

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
