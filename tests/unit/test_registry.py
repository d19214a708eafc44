"""The job registry: policy applied to jobs enqueued with no options, and what is retryable."""

import fakeredis
import psycopg
import pytest
from rq import Queue

from railyard.core import registry
from railyard.core.client import enqueue
from railyard.core.errors import LockBusyError, NotFoundError, PermanentError, StorageError


@pytest.fixture
def queue() -> Queue:
    return Queue("backup", connection=fakeredis.FakeStrictRedis())


def test_string_path_job_gets_registry_policy(queue: Queue) -> None:
    job = queue.enqueue("jobs.backup.run_backup")
    assert 180 == job.timeout  # rq's default, before the worker applies the registry
    spec = registry.require_spec("jobs.backup.run_backup")
    registry.apply_policy(job, spec)
    assert spec.timeout_s == job.timeout
    assert spec.max_attempts - 1 == job.retries_left
    assert list(spec.backoff_s) == job.retry_intervals


def test_policy_does_not_refill_retries_on_later_attempts(queue: Queue) -> None:
    job = queue.enqueue("jobs.backup.run_backup")
    spec = registry.require_spec("jobs.backup.run_backup")
    registry.apply_policy(job, spec)
    job.retries_left = 0  # what rq leaves after the last retry
    registry.apply_policy(job, spec)
    assert 0 == job.retries_left


def test_client_enqueue_matches_worker_policy(queue: Queue) -> None:
    job = enqueue("jobs.backup.run_backup", queue.connection, database="app")
    spec = registry.require_spec("jobs.backup.run_backup")
    assert (spec.timeout_s, spec.max_attempts - 1) == (job.timeout, job.retries_left)
    assert {"database": "app"} == job.kwargs
    assert "backup" == job.origin


def test_unknown_job_is_refused_by_the_client() -> None:
    with pytest.raises(PermanentError, match="not a Railyard job"):
        enqueue("os.system", fakeredis.FakeStrictRedis(), command="true")


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (StorageError("s3 503"), True),
        (LockBusyError("busy"), True),
        (ConnectionError("reset"), True),
        (psycopg.OperationalError("server closed the connection"), True),
        (PermanentError("bad input"), False),
        (NotFoundError("no such backup"), False),
        (ValueError("a bug"), False),
        (None, False),
    ],
)
def test_retryable_families(exc: BaseException | None, retryable: bool) -> None:
    assert retryable == registry.require_spec("jobs.backup.run_backup").is_retryable(exc)


def test_draining_window_covers_the_longest_job() -> None:
    """railway.toml's drainingSeconds must let the longest job finish on a redeploy."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).parents[2] / "railway.toml").read_text())
    assert registry.LONGEST_TIMEOUT_S + 60 <= config["deploy"]["drainingSeconds"]
