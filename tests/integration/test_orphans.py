"""Jobs popped off a queue by a worker that died before starting them are found and put back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from worker.orphans import SEEN_KEY, find_orphans, rescue_orphans, sweep_once_per_interval

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GRACE_S = 60


def enqueue(conn: redis.Redis, queue: str = "backup") -> Job:
    return Queue(queue, connection=conn).enqueue("jobs.diagnostics.ping")


def pop(conn: redis.Redis, job: Job) -> None:
    """What a worker's BLPOP does, before it records the job as started."""
    assert 1 == conn.lrem(Queue(job.origin, connection=conn).key, 1, job.id)


def test_a_popped_job_is_put_back_after_two_sightings_the_grace_apart(redis_conn: redis.Redis) -> None:
    waiting, lost = enqueue(redis_conn), enqueue(redis_conn)
    pop(redis_conn, lost)
    assert {lost.id: "backup"} == find_orphans(redis_conn, ["backup"])

    assert [] == rescue_orphans(redis_conn, ["backup"], now=T0, grace_s=GRACE_S)  # first sighting
    assert [] == rescue_orphans(redis_conn, ["backup"], now=T0 + timedelta(seconds=GRACE_S - 1), grace_s=GRACE_S)
    assert [lost.id] == rescue_orphans(redis_conn, ["backup"], now=T0 + timedelta(seconds=GRACE_S), grace_s=GRACE_S)

    assert [lost.id, waiting.id] == Queue("backup", connection=redis_conn).get_job_ids()  # front of the queue
    assert JobStatus.QUEUED == lost.get_status()
    assert not redis_conn.exists(SEEN_KEY)


def test_jobs_that_are_waiting_started_finished_or_elsewhere_are_left_alone(redis_conn: redis.Redis) -> None:
    enqueue(redis_conn)  # waiting in its queue
    started = enqueue(redis_conn)
    pop(redis_conn, started)
    with redis_conn.pipeline() as pipe:
        Execution.create(started, 600, pipeline=pipe, worker_name="w1")  # what a worker records before the horse starts
        pipe.execute()
    assert [started.id] == StartedJobRegistry("backup", connection=redis_conn).get_job_ids(cleanup=False)
    finished = enqueue(redis_conn)
    pop(redis_conn, finished)
    finished.set_status(JobStatus.FINISHED)
    foreign = enqueue(redis_conn, queue="emails")  # not one of Railyard's queues
    pop(redis_conn, foreign)

    assert {} == find_orphans(redis_conn, ["backup", "audio"])
    for at in (T0, T0 + timedelta(hours=1)):
        assert [] == rescue_orphans(redis_conn, ["backup", "audio"], now=at, grace_s=GRACE_S)
    assert 1 == len(Queue("backup", connection=redis_conn))


def test_a_job_taken_up_between_the_sightings_is_not_pushed_twice(redis_conn: redis.Redis) -> None:
    lost = enqueue(redis_conn)
    pop(redis_conn, lost)
    rescue_orphans(redis_conn, ["backup"], now=T0, grace_s=GRACE_S)
    lost.set_status(JobStatus.STARTED)  # a worker got to it after all
    assert [] == rescue_orphans(redis_conn, ["backup"], now=T0 + timedelta(minutes=5), grace_s=GRACE_S)
    assert 0 == len(Queue("backup", connection=redis_conn))
    assert not redis_conn.exists(SEEN_KEY)


def test_one_sweep_per_interval_across_workers(redis_conn: redis.Redis) -> None:
    lost = enqueue(redis_conn)
    pop(redis_conn, lost)
    sweep = {"now": T0, "grace_s": 0, "interval_s": 60}
    assert [] == sweep_once_per_interval(redis_conn, ["backup"], **sweep)  # type: ignore[arg-type]
    assert redis_conn.hexists(SEEN_KEY, lost.id)
    assert [] == sweep_once_per_interval(redis_conn, ["backup"], **sweep)  # type: ignore[arg-type]  # lock held
    assert 0 == len(Queue("backup", connection=redis_conn))
