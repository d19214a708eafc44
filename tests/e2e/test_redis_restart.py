"""Fault injection: Redis (append-only file on) restarts while jobs are queued and running.

Two real workers and the scheduler keep their processes: they wait for Redis to come back
(REDIS_RECONNECT_TIMEOUT_S) instead of exiting, every job queued before the restart runs,
and each runs exactly once. The witness for "once" is outside Redis: the lines each work
horse wrote to its worker's stdout when the job function started and finished.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from railyard.core.settings import DEFAULT_QUEUES
from scheduler.registration import SCHEDULED_JOBS_KEY, registration_id
from tests.e2e.conftest import SCHEDULER_ENVIRONMENT as ENV
from tests.e2e.conftest import enqueue_plain
from tests.e2e.test_scheduler import dbname, seed, todays_period
from tests.redisserver import RedisServer

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

JOBS = 40
JOB_S = 0.5
DOWN_S = 4.0


def test_jobs_survive_a_redis_restart_and_each_runs_exactly_once(
    start_worker, start_scheduler, database_url, tmp_path: Path
) -> None:
    seed(database_url)
    with RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always", "--save", "") as server:
        url = server.url()
        conn = redis.Redis.from_url(url)
        env = {
            "REDIS_URL": url,
            "DATABASE_URL": database_url,
            "BACKUP_STORAGE_URL": str(tmp_path / "backups"),
            "BACKUP_CATCH_UP": "false",
        }
        workers = [start_worker(env), start_worker(env)]
        scheduler = start_scheduler(env)
        job_ids = [enqueue_plain(url, "backup", "jobs.diagnostics.ping", delay_s=JOB_S) for _ in range(JOBS)]
        workers[0].wait_for(lambda line: line.get("event") == "ping_started")

        server.stop()
        time.sleep(DOWN_S)
        server.start()

        entry_id = f"backup-{dbname(database_url)}"
        conn.zadd(SCHEDULED_JOBS_KEY, {registration_id(ENV, entry_id): time.time() - 1})  # its cron time came
        backup_id = f"backup-{ENV}-{dbname(database_url)}-{todays_period(datetime.now(UTC))}"
        every_job = [*job_ids, backup_id]

        def unfinished() -> dict[str, str]:
            jobs = {job_id: Job.fetch(job_id, connection=conn) for job_id in every_job if Job.exists(job_id, conn)}
            return {
                job_id: str(jobs[job_id].get_status()) if job_id in jobs else "missing"
                for job_id in every_job
                if job_id not in jobs or jobs[job_id].get_status() not in (JobStatus.FINISHED, JobStatus.FAILED)
            }

        deadline = time.monotonic() + 150
        while (left := unfinished()) and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = [worker.popen.poll() is None for worker in workers]
        assert not left, f"not finished after the restart: {left}; workers alive: {alive}"
        statuses = {job_id: Job.fetch(job_id, connection=conn).get_status() for job_id in every_job}
        assert {JobStatus.FINISHED} == set(statuses.values()), statuses

        lines = [line for worker in workers for line in worker.lines()]
        started = Counter(line["job_id"] for line in lines if line.get("event") == "ping_started")
        finished = Counter(line["job_id"] for line in lines if line.get("event") == "ping_finished")
        assert dict.fromkeys(job_ids, 1) == dict(started)
        assert dict.fromkeys(job_ids, 1) == dict(finished)
        assert [None, None] == [worker.popen.poll() for worker in workers], "a worker exited instead of reconnecting"
        assert scheduler.popen.poll() is None, scheduler.text()[-2000:]
        for queue in DEFAULT_QUEUES:
            assert [] == StartedJobRegistry(queue, connection=conn).get_job_ids(cleanup=False)
            assert [] == FailedJobRegistry(queue, connection=conn).get_job_ids(cleanup=False)
        conn.close()
