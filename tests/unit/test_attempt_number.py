"""The attempt number bound to a job's log lines counts RQ's retries after exceptions."""

import fakeredis
from rq import Queue

from railyard.core import registry
from railyard.core.client import enqueue


def test_attempts_count_up_as_retries_are_used() -> None:
    job = enqueue("jobs.backup.run_backup", fakeredis.FakeStrictRedis())
    spec = registry.require_spec("jobs.backup.run_backup")
    seen = []
    for _ in range(spec.max_attempts):
        registry.apply_policy(job, spec)
        seen.append(registry.attempt_number(job))
        if job.retries_left:
            job.retries_left -= 1  # what rq's Job.retry does after a failed attempt
    assert list(range(1, spec.max_attempts + 1)) == seen


def test_a_job_without_retries_is_on_its_first_attempt() -> None:
    job = Queue("backup", connection=fakeredis.FakeStrictRedis()).enqueue("jobs.diagnostics.ping")
    registry.apply_policy(job, registry.require_spec("jobs.diagnostics.ping"))
    assert 1 == registry.attempt_number(job)
