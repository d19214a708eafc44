"""A worker SIGKILLed mid-job: the next worker's registry cleanup fails or retries the job, never leaves it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from tests.e2e.conftest import enqueue_plain, kill_group

pytestmark = pytest.mark.timeout(120)

# rq's own knobs, so cleanup runs every few seconds instead of every ten minutes.
FAST_CLEANUP_ARGS = ("--job-monitoring-interval", "1", "--maintenance-interval", "1", "--worker-ttl", "20")
FAST_CLEANUP_ENV = {"WORKER_HEARTBEAT_GRACE_S": "2", "RAILYARD_RETRY_BACKOFF_SCALE": "0.01"}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (rq's work horse starts its own session, so a group kill misses it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_everything(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker, its work horse and the horse's children at once, as a container stop does."""
    for pid in descendants(popen.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    kill_group(popen)


def wait_status(conn: Redis, job_id: str, statuses: set[JobStatus], timeout_s: float) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=conn)
        if job.get_status() in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.get_status()} after {timeout_s}s")


def test_killed_workers_job_is_failed_with_a_clear_reason(start_worker, redis_url, redis_conn) -> None:
    """ping has no retries: its abandoned run is failed as abandoned, and the started registry is emptied."""
    env = {"REDIS_URL": redis_url, **FAST_CLEANUP_ENV}
    first = start_worker(env, FAST_CLEANUP_ARGS)
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping", delay_s=60)
    first.wait_for(lambda line: line.get("event") == "ping_started")
    assert [job_id] == StartedJobRegistry("backup", connection=redis_conn).get_job_ids(cleanup=False)
    kill_everything(first.popen)

    second = start_worker(env, FAST_CLEANUP_ARGS)
    job = wait_status(redis_conn, job_id, {JobStatus.FAILED, JobStatus.FINISHED}, timeout_s=40)
    assert JobStatus.FAILED == job.get_status()
    assert "AbandonedJobError" in (job.latest_result().exc_string or "")
    line = second.wait_for(lambda line: line.get("event") == "job_failed" and line.get("job_id") == job_id)
    assert (False, "AbandonedJobError") == (line["will_retry"], line["error_type"])
    assert line["error"].startswith("abandoned: the worker running this job stopped")
    assert [] == StartedJobRegistry("backup", connection=redis_conn).get_job_ids(cleanup=False)


def test_a_job_popped_by_a_worker_that_died_before_starting_it_is_put_back_and_runs_once(
    start_worker, redis_url, redis_conn
) -> None:
    """A worker killed between taking a job off the queue and recording it as started left it nowhere."""
    job_id = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping")
    assert 1 == redis_conn.lrem("rq:queue:backup", 1, job_id)  # the dead worker's BLPOP
    assert JobStatus.QUEUED == Job.fetch(job_id, connection=redis_conn).get_status()

    worker = start_worker({"REDIS_URL": redis_url, **FAST_CLEANUP_ENV}, FAST_CLEANUP_ARGS)
    job = wait_status(redis_conn, job_id, {JobStatus.FINISHED, JobStatus.FAILED}, timeout_s=60)
    assert JobStatus.FINISHED == job.get_status()
    rescued = worker.wait_for(lambda line: line.get("event") == "orphaned_job_requeued")
    assert ("backup", job_id) == (rescued["queue"], rescued["job_id"])
    assert [job_id] == [line["job_id"] for line in worker.lines() if line.get("event") == "ping_started"]
