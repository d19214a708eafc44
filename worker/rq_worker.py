"""RailyardWorker: plain rq's forking Worker plus the job registry and job-bound logging.

Started as ``rq worker --config worker.rq_config --worker-class worker.RailyardWorker``.
Before a job runs, its registry entry sets the timeout and retry budget (whatever the
producer passed); jobs not in the registry are failed without being run. In the work
horse, job_id, queue, func and attempt are bound to every log line, and permanent errors
use up the retry budget so they are not retried.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import structlog
from rq.job import Job
from rq.queue import Queue
from rq.worker import Worker

from jobs import registry

log = structlog.get_logger()


class RailyardWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.push_exc_handler(_drop_retries_for_permanent_errors)

    def execute_job(self, job: Job, queue: Queue) -> None:
        spec = registry.spec_for(job.func_name or "")
        if spec is None:
            self._refuse(job, queue)
            return
        registry.apply_policy(job, spec)
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

    def _refuse(self, job: Job, queue: Queue) -> None:
        reason = (
            f"refused: {job.func_name!r} is not a Railyard job; only functions in jobs.registry run on "
            f"Railyard's queues ({', '.join(sorted(registry.REGISTRY))})"
        )
        log.error("job_refused", job_id=job.id, queue=queue.name, func=job.func_name)
        job.retries_left = None
        self.handle_job_failure(job, queue=queue, exc_string=reason)


def _drop_retries_for_permanent_errors(
    job: Job, exc_type: type[BaseException], exc_value: BaseException, tb: TracebackType
) -> bool:
    spec = registry.spec_for(job.func_name or "")
    retry = spec is not None and spec.is_retryable(exc_value)
    if not retry and job.retries_left:
        job.retries_left = 0
    log.error(
        "job_failed",
        error=str(exc_value).splitlines()[0] if str(exc_value) else exc_type.__name__,
        error_type=exc_type.__name__,
        will_retry=bool(retry and job.retries_left),
    )
    return True  # let the next handler (rq's default: move to failed registry) run
