"""The cheap check for abandoned jobs: only lapsed heartbeats trigger rq's cleanup, once per queue at a time."""

from __future__ import annotations

import time

import redis
from rq import Queue, Retry
from rq.executions import Execution
from rq.job import Job, JobStatus

from worker.rescue import queues_with_expired_jobs, rescue_abandoned


def running(conn: redis.Redis, queue: Queue, *, heartbeat_ttl_s: int, retries: int = 0) -> Job:
    """A job as a worker records it when it starts it; its heartbeat lapses after ``heartbeat_ttl_s``."""
    job = queue.enqueue("jobs.diagnostics.ping", retry=Retry(max=retries) if retries else None)
    conn.lrem(queue.key, 1, job.id)
    with conn.pipeline() as pipe:
        Execution.create(job, heartbeat_ttl_s, pipeline=pipe)
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    return job


def test_only_a_queue_with_a_lapsed_heartbeat_is_cleaned(redis_conn: redis.Redis) -> None:
    backup, audio, retention = (Queue(name, connection=redis_conn) for name in ("backup", "audio", "retention"))
    alive = running(redis_conn, backup, heartbeat_ttl_s=600)
    dead = running(redis_conn, audio, heartbeat_ttl_s=1)
    retried = running(redis_conn, retention, heartbeat_ttl_s=1, retries=2)
    later = time.time() + 5
    assert ["audio", "retention"] == [
        q.name for q in queues_with_expired_jobs(redis_conn, [backup, audio, retention], later)
    ]

    handled: list[str] = []
    seen = rescue_abandoned(redis_conn, [backup, audio, retention], later, [lambda job, *exc: handled.append(job.id)])
    assert (["audio", "retention"], sorted([dead.id, retried.id])) == (seen, sorted(handled))
    assert (JobStatus.STARTED, JobStatus.FAILED) == (alive.get_status(), dead.get_status())
    assert retried.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED)
    assert [] == queues_with_expired_jobs(redis_conn, [backup, audio, retention], later)
    assert not redis_conn.exists(audio.registry_cleaning_key)  # the lock is given back


def test_a_queue_being_cleaned_elsewhere_is_left_alone(redis_conn: redis.Redis) -> None:
    audio = Queue("audio", connection=redis_conn)
    dead = running(redis_conn, audio, heartbeat_ttl_s=1)
    redis_conn.set(audio.registry_cleaning_key, 1, ex=60)  # rq's maintenance, or another worker
    assert [] == rescue_abandoned(redis_conn, [audio], time.time() + 5)
    assert JobStatus.STARTED == dead.get_status()
    redis_conn.delete(audio.registry_cleaning_key)
    assert ["audio"] == rescue_abandoned(redis_conn, [audio], time.time() + 5)
    assert JobStatus.FAILED == dead.get_status()
