"""Delayed retries really run: the Procfile's worker (--with-scheduler) re-queues them after the backoff."""

from __future__ import annotations

import time

import pytest
from rq.job import Job, JobStatus

from railyard.core import registry
from tests.e2e.conftest import enqueue_plain

pytestmark = pytest.mark.timeout(90)


def test_a_failed_job_is_retried_after_its_backoff_and_succeeds(start_worker, redis_url, redis_conn) -> None:
    spec = registry.require_spec("jobs.diagnostics.retry_probe")
    assert (2, (1,)) == (spec.max_attempts, spec.backoff_s)
    worker = start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.retry_probe")
    failed = worker.wait_for(lambda line: line.get("event") == "job_failed" and line.get("job_id") == job_id)
    assert (True, 1) == (failed["will_retry"], failed["attempt"])

    deadline = time.monotonic() + 30
    while Job.fetch(job_id, connection=redis_conn).get_status() != JobStatus.FINISHED:
        assert time.monotonic() < deadline, "the retry never ran: is the worker started with --with-scheduler?"
        time.sleep(0.1)
    job = Job.fetch(job_id, connection=redis_conn)
    assert {"attempt": 2, "job_id": job_id} == job.return_value()
    attempts = [
        line["attempt"]
        for line in worker.lines()
        if line.get("event") == "retry_probe_attempt" and line.get("job_id") == job_id
    ]
    assert [1, 2] == attempts
