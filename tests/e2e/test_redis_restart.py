"""Redis restarts (append-only file on) while jobs are queued and running: no job is lost or run twice.

rq's worker exits when Redis disappears while a job runs; Railway's restart policy (ALWAYS)
starts it again, as this test does, and the interrupted job is settled by registry cleanup."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from tests.conftest import free_port, wait_for_port
from tests.e2e.test_abandoned import FAST_CLEANUP_ARGS, FAST_CLEANUP_ENV

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

JOBS = 30


class PrivateRedis:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_worker_survives_a_redis_restart_and_runs_every_job_once(start_worker, private_redis) -> None:
    """The job running at the restart cannot record its result: it is failed as abandoned (ping has no
    retries), never run twice; every other job runs once and finishes."""
    env = {"REDIS_URL": private_redis.url, **FAST_CLEANUP_ENV}
    worker = start_worker({"REDIS_URL": private_redis.url, **FAST_CLEANUP_ENV}, FAST_CLEANUP_ARGS)
    conn = redis.Redis.from_url(private_redis.url)
    queue = Queue("backup", connection=conn)
    ids = [queue.enqueue("jobs.diagnostics.ping", kwargs={"delay_s": 0.3}).id for _ in range(JOBS)]
    worker.wait_for(lambda line: line.get("event") == "ping_finished")
    private_redis.stop()
    time.sleep(2)
    private_redis.start()
    conn = redis.Redis.from_url(private_redis.url)
    workers = [worker]
    deadline = time.monotonic() + 120
    statuses: dict[str, JobStatus | None] = {}
    while time.monotonic() < deadline:
        if workers[-1].popen.poll() is not None:  # the restart policy brings the worker back
            workers.append(start_worker(env, FAST_CLEANUP_ARGS))
        statuses = {i: Job.fetch(i, connection=conn).get_status() for i in ids}
        if all(s in (JobStatus.FINISHED, JobStatus.FAILED) for s in statuses.values()):
            break
        time.sleep(0.5)
    counts = Counter(statuses.values())
    assert JobStatus.FAILED not in counts or 1 == counts[JobStatus.FAILED], counts
    assert JOBS == counts[JobStatus.FINISHED] + counts[JobStatus.FAILED], counts
    runs = Counter(line["job_id"] for w in workers for line in w.lines() if line.get("event") == "ping_started")
    assert {i: 1 for i in ids} == {i: runs[i] for i in ids}
    assert [] == StartedJobRegistry("backup", connection=conn).get_job_ids(cleanup=False)
