"""The real `rq worker`, started exactly as the Procfile says, running Railyard's registry."""

from __future__ import annotations

import signal
import time

import pytest
from redis import Redis
from rq.job import Job, JobStatus

from railyard.core import registry
from tests.e2e.conftest import enqueue_plain

pytestmark = pytest.mark.timeout(120)


def wait_status(conn: Redis, job_id: str, statuses: set[JobStatus], timeout_s: float = 30) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=conn)
        if job.get_status() in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job.get_status()} after {timeout_s}s")


def test_plain_producer_job_runs_with_registry_timeout(start_worker, redis_url, redis_conn) -> None:
    """A process without Railyard enqueues by string path, no options: the registry's timeout applies."""
    worker = start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping")
    job = wait_status(redis_conn, job_id, {JobStatus.FINISHED, JobStatus.FAILED})
    assert JobStatus.FINISHED == job.get_status()
    assert registry.require_spec("jobs.diagnostics.ping").timeout_s == job.return_value()["timeout"]
    assert 0 == worker.stop()


def test_job_log_lines_carry_job_context(start_worker, redis_url, redis_conn) -> None:
    worker = start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping")
    wait_status(redis_conn, job_id, {JobStatus.FINISHED})
    line = worker.wait_for(lambda line: line.get("event") == "ping_finished")
    assert (job_id, "backup", "jobs.diagnostics.ping", 1) == (
        line["job_id"],
        line["queue"],
        line["func"],
        line["attempt"],
    )


def test_sigterm_lets_the_running_job_finish(start_worker, redis_url, redis_conn) -> None:
    """Warm shutdown: SIGTERM mid-job, the job completes and the worker exits 0."""
    worker = start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping", delay_s=3)
    worker.wait_for(lambda line: line.get("event") == "ping_started")
    worker.popen.send_signal(signal.SIGTERM)
    assert 0 == worker.popen.wait(timeout=30)
    assert JobStatus.FINISHED == Job.fetch(job_id, connection=redis_conn).get_status()


def test_unregistered_function_is_refused_not_run(start_worker, redis_url, redis_conn, tmp_path) -> None:
    """Only registry functions run on Railyard's queues: no arbitrary import path execution."""
    marker = tmp_path / "ran"
    start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "audio", "pathlib.Path.touch", self=str(marker))
    job = wait_status(redis_conn, job_id, {JobStatus.FAILED, JobStatus.FINISHED})
    assert JobStatus.FAILED == job.get_status()
    assert "not a Railyard job" in (job.latest_result().exc_string or "")
    assert not marker.exists()


def test_permanent_error_is_not_retried(start_worker, redis_url, redis_conn) -> None:
    """Bad input fails once, with the registry's retry budget left unused."""
    start_worker({"REDIS_URL": redis_url})
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup", schema_only=True, data_only=True)
    job = wait_status(redis_conn, job_id, {JobStatus.FAILED, JobStatus.FINISHED, JobStatus.SCHEDULED})
    assert JobStatus.FAILED == job.get_status()
    assert "exclude each other" in (job.latest_result().exc_string or "")
    assert not job.number_of_retries


def test_transient_error_is_retried_with_backoff(start_worker, redis_url, redis_conn, tmp_path) -> None:
    """A backup of an unreachable database is retried by the worker's scheduler after the backoff."""
    from tests.conftest import free_port

    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        "BACKUP_STORAGE_URL": str(tmp_path / "store"),
    }
    worker = start_worker(env)
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    job = wait_status(redis_conn, job_id, {JobStatus.SCHEDULED, JobStatus.FAILED})
    assert JobStatus.SCHEDULED == job.get_status()  # retry scheduled after the registry's backoff
    line = worker.wait_for(lambda line: line.get("event") == "job_failed")
    assert (True, "RetryableError") == (line["will_retry"], line["error_type"])
    assert "cannot connect" in line["error"]


def test_on_railway_a_short_draining_window_is_a_warning_at_start(start_worker, redis_url, redis_conn) -> None:
    """Railway no longer reads railway.toml: without RAILWAY_DEPLOYMENT_DRAINING_SECONDS the worker says so."""
    railway = {"REDIS_URL": redis_url, "RAILWAY_ENVIRONMENT_NAME": "staging", "ENVIRONMENT": "staging"}
    bare = start_worker(railway)
    line = bare.wait_for(lambda line: line.get("event") == "draining_window_short")
    assert "warning" == line["level"]
    assert f"RAILWAY_DEPLOYMENT_DRAINING_SECONDS={registry.LONGEST_TIMEOUT_S + 60}" in line["problem"]
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping")
    wait_status(redis_conn, job_id, {JobStatus.FINISHED})  # a warning, not a refusal: it works
    assert 0 == bare.stop()

    drained = start_worker({**railway, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": str(registry.LONGEST_TIMEOUT_S + 60)})
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping")
    wait_status(redis_conn, job_id, {JobStatus.FINISHED})
    assert [] == [line for line in drained.lines() if line.get("event") == "draining_window_short"]
    assert 0 == drained.stop()
