"""Reconciling the declared schedule with rq-scheduler's registered jobs, against real Redis."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis
from rq.job import Job
from rq_scheduler import Scheduler

from railyard.core.schedule_config import ScheduleConfig
from railyard.core.serializer import SerializerName
from railyard.core.settings import Settings
from scheduler.registration import SCHEDULED_JOBS_KEY, reconcile, registered_entries, registration_id
from scheduler.schedule import BACKUP_JOB, PRUNE_JOB, Entry
from scheduler.service import RailyardScheduler

ENV = "production"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
BACKUP = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {}, "app", True)
PRUNE = Entry("prune-backups", "prune", "30 4 * * *", "UTC", PRUNE_JOB)


def members(conn: redis.Redis) -> list[str]:
    return sorted(m.decode() for m in conn.zrange(SCHEDULED_JOBS_KEY, 0, -1))


def test_reconcile_is_idempotent(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    first = reconcile(redis_conn, [BACKUP, PRUNE], environment=ENV, now=NOW, serializer=serializer)
    assert (["backup-app", "prune-backups"], []) == (first.added, first.kept)
    for hours in range(1, 6):
        again = reconcile(
            redis_conn, [BACKUP, PRUNE], environment=ENV, now=NOW + timedelta(hours=hours), serializer=serializer
        )
        assert (["backup-app", "prune-backups"], [], [], []) == (again.kept, again.added, again.replaced, again.removed)
    expected = sorted(registration_id(ENV, e) for e in ("backup-app", "prune-backups"))
    assert expected == members(redis_conn)
    registered = registered_entries(redis_conn, ENV, serializer=serializer)
    # Kept entries keep the run they were waiting for, not one computed at the later restart.
    assert datetime(2026, 11, 23, 3, 0, tzinfo=UTC) == registered["backup-app"].next_run
    assert datetime(2026, 11, 23, 4, 30, tzinfo=UTC) == registered["prune-backups"].next_run
    assert BACKUP == registered["backup-app"].entry


def test_a_changed_cron_replaces_the_entry(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    reconcile(redis_conn, [BACKUP, PRUNE], environment=ENV, now=NOW, serializer=serializer)
    changed = replace(BACKUP, cron="0 1 * * *", timezone="Europe/Paris")
    report = reconcile(redis_conn, [changed, PRUNE], environment=ENV, now=NOW, serializer=serializer)
    assert (["backup-app"], ["prune-backups"]) == (report.replaced, report.kept)
    registered = registered_entries(redis_conn, ENV, serializer=serializer)
    assert changed == registered["backup-app"].entry
    assert datetime(2026, 11, 23, 0, 0, tzinfo=UTC) == registered["backup-app"].next_run  # 01:00 in Paris
    assert 2 == len(members(redis_conn))


def test_an_entry_no_longer_declared_is_cancelled(redis_conn: redis.Redis, serializer: SerializerName) -> None:
    reconcile(redis_conn, [BACKUP, PRUNE], environment=ENV, now=NOW, serializer=serializer)
    report = reconcile(redis_conn, [PRUNE], environment=ENV, now=NOW, serializer=serializer)
    assert ["backup-app"] == report.removed
    assert [registration_id(ENV, "prune-backups")] == members(redis_conn)
    assert not Job.exists(registration_id(ENV, "backup-app"), connection=redis_conn)


def test_other_environments_and_application_jobs_are_left_alone(
    redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    reconcile(redis_conn, [BACKUP], environment="staging", now=NOW, serializer=serializer)
    app_job = Scheduler(connection=redis_conn).enqueue_at(datetime(2030, 1, 1), "jobs.diagnostics.ping")
    reconcile(redis_conn, [PRUNE], environment=ENV, now=NOW, serializer=serializer)
    reconcile(redis_conn, [], environment=ENV, now=NOW, serializer=serializer)
    assert sorted([registration_id("staging", "backup-app"), app_job.id]) == members(redis_conn)
    assert ["backup-app"] == list(registered_entries(redis_conn, "staging", serializer=serializer))


def test_two_schedulers_starting_at_once_register_each_entry_once(
    redis_url: str, redis_conn: redis.Redis, serializer: SerializerName
) -> None:
    env = {"REDIS_URL": redis_url, "ENVIRONMENT": ENV, "DATABASE_URL": "postgresql://db/app"}
    settings = Settings.from_env({**env, "RAILYARD_SERIALIZER": serializer})
    config = ScheduleConfig(interval_s=1)
    barrier = threading.Barrier(4)
    reports = []

    def start() -> None:
        conn = redis.Redis.from_url(redis_url)
        scheduler = RailyardScheduler(conn, settings=settings, config=config, entries=[BACKUP, PRUNE])
        barrier.wait()
        reports.append(scheduler.reconcile())
        conn.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 4 == len(reports)
    added = [r.added for r in reports if r is not None and r.added]
    assert [["backup-app", "prune-backups"]] == added  # one scheduler registered, the others found them
    assert sorted(registration_id(ENV, e) for e in ("backup-app", "prune-backups")) == members(redis_conn)
    assert not redis_conn.exists(RailyardScheduler.scheduler_lock_key)
