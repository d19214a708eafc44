"""Firing an entry against real Redis: one job per period whatever fires, with the registry's policy."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from railyard.core import registry
from railyard.core.errors import PermanentError
from railyard.core.serializer import SerializerName, rq_serializer
from scheduler import runs
from scheduler.claims import STALE_CLAIM_S, claim_key
from scheduler.schedule import BACKUP_JOB, Entry
from scheduler.trigger import fire

ENV = "production"
BACKUP = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {"database": "app"}, "app", True)
CRON_TIME = datetime(2026, 11, 22, 3, 0, 2, tzinfo=UTC)
WORK_ID = "backup-production-app-20261122T0300Z"


def queued(conn: redis.Redis, queue: str = "backup") -> list[str]:
    return Queue(queue, connection=conn).get_job_ids()


def test_two_triggers_in_one_period_enqueue_one_job(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    first = fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    second = fire(
        redis_conn, BACKUP, environment=ENV, now=CRON_TIME + timedelta(hours=6), reason="manual", serializer=serializer
    )
    assert (True, False) == (first.enqueued, second.enqueued)
    assert WORK_ID == first.job_id == second.job_id
    assert [WORK_ID] == queued(redis_conn)


def test_the_next_period_is_folded_while_the_previous_job_waits_and_enqueues_once_it_is_done(
    redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    next_day = CRON_TIME + timedelta(days=1)
    folded = fire(redis_conn, BACKUP, environment=ENV, now=next_day, reason="catch-up", serializer=serializer)
    assert (False, WORK_ID) == (folded.enqueued, folded.folded_into)
    assert [WORK_ID] == queued(redis_conn)
    assert 1 == runs.folded(redis_conn, ENV, BACKUP.id)

    # A person asking is not folded: `railyard schedule run` enqueues this period's work.
    asked = fire(redis_conn, BACKUP, environment=ENV, now=next_day, reason="manual", serializer=serializer)
    assert asked.enqueued and asked.folded_into is None
    assert [WORK_ID, "backup-production-app-20261123T0300Z"] == queued(redis_conn)


def test_the_next_period_enqueues_again_once_the_previous_job_finished(
    redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    queue = Queue("backup", connection=redis_conn, serializer=rq_serializer(serializer))
    job = Job.fetch(WORK_ID, connection=redis_conn, serializer=rq_serializer(serializer))
    queue.remove(job)
    job.set_status(JobStatus.FINISHED)  # as a worker leaves it
    late = fire(
        redis_conn, BACKUP, environment=ENV, now=CRON_TIME + timedelta(days=1), reason="cron", serializer=serializer
    )
    assert late.enqueued
    assert ["backup-production-app-20261123T0300Z"] == queued(redis_conn)
    assert 0 == runs.folded(redis_conn, ENV, BACKUP.id)


def test_before_the_cron_time_the_period_is_yesterdays(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    early = fire(
        redis_conn,
        BACKUP,
        environment=ENV,
        now=CRON_TIME - timedelta(minutes=1),
        reason="manual",
        serializer=serializer,
    )
    assert "backup-production-app-20261121T0300Z" == early.job_id


def test_concurrent_triggers_enqueue_exactly_one_job(
    redis_url: str, redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def trigger() -> None:
        conn = redis.Redis.from_url(redis_url)
        barrier.wait()
        results.append(
            fire(conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer).enqueued
        )
        conn.close()

    threads = [threading.Thread(target=trigger) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [True] + [False] * 7 == sorted(results, reverse=True)
    assert [WORK_ID] == queued(redis_conn)


def test_the_job_carries_the_registry_policy_and_arguments(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    job = Job.fetch(WORK_ID, connection=redis_conn, serializer=rq_serializer(serializer))
    spec = registry.require_spec(BACKUP_JOB)
    assert (BACKUP_JOB, {"database": "app"}, "backup") == (job.func_name, job.kwargs, job.origin)
    assert (spec.timeout_s, spec.failure_ttl_s, spec.result_ttl_s) == (job.timeout, job.failure_ttl, job.result_ttl)
    assert (spec.max_attempts - 1, list(spec.backoff_s)) == (job.retries_left, job.retry_intervals)


def test_the_last_run_is_recorded_with_the_jobs_outcome(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    assert runs.read(redis_conn, ENV, BACKUP.id, serializer=serializer) is None
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="catch-up", serializer=serializer)
    fire(
        redis_conn, BACKUP, environment=ENV, now=CRON_TIME + timedelta(hours=1), reason="manual", serializer=serializer
    )
    assert runs.LastRun(CRON_TIME, "catch-up", WORK_ID, "queued") == runs.read(
        redis_conn, ENV, BACKUP.id, serializer=serializer
    )
    Job.fetch(WORK_ID, connection=redis_conn, serializer=rq_serializer(serializer)).delete()
    last = runs.read(redis_conn, ENV, BACKUP.id, serializer=serializer)
    assert last is not None and "expired" == last.outcome


def test_the_claim_lasts_until_a_day_after_the_period(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    ttl_s = redis_conn.ttl(claim_key(WORK_ID))
    expected_s = (timedelta(days=2) - timedelta(seconds=2)).total_seconds()
    assert expected_s - 5 <= ttl_s <= expected_s


def test_a_failed_enqueue_releases_the_claim(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    unknown = Entry("backup-app", "backup", "0 3 * * *", "UTC", "jobs.nowhere.run", {}, "app", True)
    with pytest.raises(PermanentError, match="not a Railyard job"):
        fire(redis_conn, unknown, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    assert not redis_conn.exists(claim_key(WORK_ID))
    assert fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer).enqueued


@pytest.mark.parametrize(("claimed_s_ago", "enqueued"), [(STALE_CLAIM_S + 30, True), (5, False)])
def test_a_pending_claim_is_taken_over_only_when_stale(
    redis_conn: redis.Redis, claimed_s_ago: int, enqueued: bool, serializer: SerializerName
) -> None:
    """A process that died between claiming and enqueueing does not cost the period's work."""
    redis_conn.set(claim_key(WORK_ID), f"pending:{CRON_TIME.timestamp() - claimed_s_ago}", ex=3600)
    assert (
        enqueued
        == fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer).enqueued
    )
    assert ([WORK_ID] if enqueued else []) == queued(redis_conn)


def test_an_enqueued_claim_is_never_taken_over(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer)
    Job.fetch(
        WORK_ID, connection=redis_conn, serializer=rq_serializer(serializer)
    ).delete()  # the job expired from RQ long ago
    later = CRON_TIME + timedelta(hours=20)
    assert not fire(redis_conn, BACKUP, environment=ENV, now=later, reason="catch-up", serializer=serializer).enqueued


def test_an_existing_job_with_the_work_id_is_not_enqueued_twice(
    redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    """Even without a claim (Redis lost it), RQ would push a duplicate id twice: it is checked."""
    Queue("backup", connection=redis_conn, serializer=rq_serializer(serializer)).enqueue(BACKUP_JOB, job_id=WORK_ID)
    assert not fire(redis_conn, BACKUP, environment=ENV, now=CRON_TIME, reason="cron", serializer=serializer).enqueued
    assert [WORK_ID] == queued(redis_conn)
