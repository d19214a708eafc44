"""The scheduler's passes in-process with a fake clock, against real Redis and a local backup store."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import structlog.testing
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq_scheduler import Scheduler

from railyard.core.schedule_config import ScheduleConfig
from railyard.core.serializer import SerializerName
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from scheduler import registration, runs
from scheduler.registration import SCHEDULED_JOBS_KEY, registration_id
from scheduler.schedule import BACKUP_JOB, PRUNE_JOB, Entry
from scheduler.service import RailyardScheduler
from tests.manifests import put_backup

ENV = "production"
START = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
BACKUP = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {}, "app", True)
PRUNE = Entry("prune-backups", "prune", "30 4 * * *", "UTC", PRUNE_JOB)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return str(tmp_path / "backups")


def make(
    redis_url: str,
    storage: str,
    clock: Clock,
    entries: list[Entry] | None = None,
    environment: str = ENV,
    serializer: SerializerName = "pickle",
) -> RailyardScheduler:
    settings = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "ENVIRONMENT": environment,
            "DATABASE_URL": "postgresql://db/app",
            "BACKUP_STORAGE_URL": storage,
            "RAILYARD_SERIALIZER": serializer,
        }
    )
    return RailyardScheduler(
        redis.Redis.from_url(redis_url),
        settings=settings,
        config=ScheduleConfig(interval_s=1),
        entries=[BACKUP, PRUNE] if entries is None else entries,
        clock=clock,
    )


def queued(conn: redis.Redis, queue: str = "backup") -> list[str]:
    return Queue(queue, connection=conn).get_job_ids()


def next_runs(conn: redis.Redis, serializer: SerializerName = "pickle") -> dict[str, datetime]:
    return {e: r.next_run for e, r in registration.registered_entries(conn, ENV, serializer=serializer).items()}


def test_a_due_entry_fires_once_and_waits_for_its_next_run(redis_url, redis_conn, storage) -> None:
    clock = Clock(START)
    scheduler = make(redis_url, storage, clock)
    scheduler.reconcile()
    scheduler.run_once()
    assert [] == queued(redis_conn)

    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    scheduler.run_once()
    scheduler.run_once()
    assert ["backup-production-app-20261122T0300Z"] == queued(redis_conn)
    assert {
        "backup-app": datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
        "prune-backups": datetime(2026, 11, 22, 4, 30, tzinfo=UTC),
    } == next_runs(redis_conn)
    last = runs.read(redis_conn, ENV, "backup-app", serializer="pickle")
    assert last is not None and ("cron", "queued") == (last.reason, last.outcome)


def test_entries_lost_with_redis_data_are_registered_again(redis_url, redis_conn, storage) -> None:
    clock = Clock(START)
    scheduler = make(redis_url, storage, clock)
    scheduler.reconcile()
    redis_conn.flushdb()  # a Redis restarted without persistence
    scheduler.run_once()
    assert {
        "backup-app": datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
        "prune-backups": datetime(2026, 11, 22, 4, 30, tzinfo=UTC),
    } == next_runs(redis_conn)


def test_a_scheduler_down_for_days_fires_a_missed_entry_once(redis_url, redis_conn, storage) -> None:
    make(redis_url, storage, Clock(START)).reconcile()
    clock = Clock(START + timedelta(days=3, hours=8))
    scheduler = make(redis_url, storage, clock)
    scheduler.reconcile()
    scheduler.run_once()
    assert ["backup-production-app-20261125T0300Z"] == queued(redis_conn)  # today's period, not three
    assert datetime(2026, 11, 26, 3, 0, tzinfo=UTC) == next_runs(redis_conn)["backup-app"]


def test_two_replicas_that_both_see_an_entry_due_enqueue_once(redis_url, redis_conn, storage) -> None:
    """As when one scheduler's lock expired mid-pass: both fire the same entry."""
    clock = Clock(START)
    one, two = make(redis_url, storage, clock), make(redis_url, storage, clock)
    one.reconcile()
    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    due_one, due_two = list(one.get_jobs_to_queue()), list(two.get_jobs_to_queue())
    for job in due_one:
        one.enqueue_job(job)
    for job in due_two:
        two.enqueue_job(job)
    assert ["backup-production-app-20261122T0300Z"] == queued(redis_conn)


def test_a_job_that_cannot_be_enqueued_skips_to_its_next_run(redis_url, redis_conn, storage) -> None:
    broken = Entry("backup-app", "backup", "0 3 * * *", "UTC", "jobs.nowhere.run", {}, "app", True)
    clock = Clock(START)
    scheduler = make(redis_url, storage, clock, entries=[broken])
    scheduler.reconcile()
    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    scheduler.run_once()
    assert [] == queued(redis_conn)
    assert datetime(2026, 11, 23, 3, 0, tzinfo=UTC) == next_runs(redis_conn)["backup-app"]


def test_another_environments_entries_are_not_fired(redis_url, redis_conn, storage) -> None:
    clock = Clock(START)
    make(redis_url, storage, clock, environment="staging").reconcile()
    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    make(redis_url, storage, clock).run_once()
    assert [] == queued(redis_conn)
    staging = registration.registered_entries(redis_conn, "staging", serializer="pickle")
    assert datetime(2026, 11, 22, 3, 0, tzinfo=UTC) == staging["backup-app"].next_run  # still due, not fired


def test_application_jobs_are_moved_to_their_queue_as_rq_scheduler_does(redis_url, redis_conn, storage) -> None:
    job = Scheduler(connection=redis_conn).enqueue_at(datetime(2026, 11, 22, 0, 30), "jobs.diagnostics.ping")
    make(redis_url, storage, Clock(START)).run_once()
    assert [job.id] == Queue("default", connection=redis_conn).get_job_ids()
    assert redis_conn.zscore(SCHEDULED_JOBS_KEY, job.id) is None


def test_the_lock_is_released_only_by_its_owner(redis_url, redis_conn, storage) -> None:
    scheduler = make(redis_url, storage, Clock(START))
    redis_conn.set(scheduler.scheduler_lock_key, "another-scheduler", ex=60)
    assert not scheduler.acquire_lock()
    scheduler.remove_lock()
    assert b"another-scheduler" == redis_conn.get(scheduler.scheduler_lock_key)
    redis_conn.delete(scheduler.scheduler_lock_key)
    assert scheduler.acquire_lock()
    redis_conn.set(scheduler.scheduler_lock_key, "taken-over-after-expiry", ex=60)
    scheduler.remove_lock()
    assert b"taken-over-after-expiry" == redis_conn.get(scheduler.scheduler_lock_key)


def test_catch_up_backs_up_a_stale_database_once(redis_url, redis_conn, storage) -> None:
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    store, location = open_store(storage), StorageLocation.parse(storage)
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(hours=30))
    put_backup(store, location, environment=ENV, database="other", finished_at=now - timedelta(hours=1))
    put_backup(store, location, environment="staging", database="app", finished_at=now - timedelta(hours=1))
    scheduler = make(redis_url, storage, Clock(now))
    fired = scheduler.catch_up() + scheduler.catch_up()
    assert [True, False] == [f.enqueued for f in fired]
    assert ["backup-production-app-20261122T0300Z"] == queued(redis_conn)
    last = runs.read(redis_conn, ENV, "backup-app", serializer="pickle")
    assert last is not None and "catch-up" == last.reason


def test_a_changed_cron_does_not_queue_a_second_catch_up_while_one_is_pending(redis_url, redis_conn, storage) -> None:
    """The first catch-up's job is waiting, then running: a cron change (another period id) adds none."""
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    store, location = open_store(storage), StorageLocation.parse(storage)
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(hours=30))
    assert [True] == [f.enqueued for f in make(redis_url, storage, Clock(now)).catch_up()]
    [first] = queued(redis_conn)
    hourly = Entry("backup-app", "backup", "0 * * * *", "UTC", BACKUP_JOB, {}, "app", True)
    changed = make(redis_url, storage, Clock(now + timedelta(hours=1)), entries=[hourly])
    assert [(False, first)] == [(f.enqueued, f.folded_into) for f in changed.catch_up()]
    job = Job.fetch(first, connection=redis_conn)
    job.set_status(JobStatus.STARTED)
    assert [(False, first)] == [(f.enqueued, f.folded_into) for f in changed.catch_up()]
    job.set_status(JobStatus.FINISHED)
    assert ["backup-production-app-20261122T1000Z"] == [f.job_id for f in changed.catch_up() if f.enqueued]


def test_catch_up_leaves_a_fresh_database_alone(redis_url, redis_conn, storage) -> None:
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    store, location = open_store(storage), StorageLocation.parse(storage)
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(hours=30))
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(hours=6))
    assert [] == make(redis_url, storage, Clock(now)).catch_up()
    assert [] == queued(redis_conn)


def test_catch_up_backs_up_a_database_never_backed_up(redis_url, redis_conn, storage) -> None:
    fired = make(redis_url, storage, Clock(START)).catch_up()
    assert [("backup-production-app-20261121T0300Z", True)] == [(f.job_id, f.enqueued) for f in fired]


def test_the_cron_run_after_a_catch_up_in_the_same_period_adds_nothing(redis_url, redis_conn, storage) -> None:
    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    scheduler = make(redis_url, storage, clock)
    scheduler.reconcile()
    scheduler.catch_up()  # 02:00: the period began yesterday at 03:00
    clock.at = datetime(2026, 11, 22, 2, 59, tzinfo=UTC)
    scheduler.catch_up()
    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    scheduler.run_once()  # a new period, but the catch-up's backup still waits: tonight's is folded into it
    assert ["backup-production-app-20261121T0300Z"] == queued(redis_conn)
    assert 1 == runs.folded(redis_conn, ENV, "backup-app")


def test_catch_up_reads_backups_from_s3(redis_url, redis_conn, bucket) -> None:
    storage = f"s3://{bucket}/db"
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    store, location = open_store(storage, addressing_style="path"), StorageLocation.parse(storage)
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(hours=27))
    scheduler = make(redis_url, storage, Clock(now))
    assert [True] == [f.enqueued for f in scheduler.catch_up()]
    put_backup(store, location, environment=ENV, database="app", finished_at=now - timedelta(minutes=5))
    redis_conn.flushdb()
    assert [] == scheduler.catch_up()


def test_catch_up_with_a_missing_bucket_is_logged_not_raised(redis_url, redis_conn, s3_env) -> None:
    scheduler = make(redis_url, "s3://no-such-bucket-here/db", Clock(START))
    with structlog.testing.capture_logs() as logs:
        assert [] == scheduler.catch_up()
    assert [] == queued(redis_conn)
    [failed] = [line for line in logs if line["event"] == "catch_up_failed"]
    assert "no-such-bucket-here" in failed["error"]


def test_run_in_burst_mode_reconciles_fires_and_releases_everything(redis_url, redis_conn, storage) -> None:
    clock = Clock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    store, location = open_store(storage), StorageLocation.parse(storage)
    put_backup(store, location, environment=ENV, database="app", finished_at=clock.at - timedelta(hours=2))
    scheduler = make(redis_url, storage, clock)
    scheduler.run(burst=True)
    assert sorted(registration_id(ENV, e) for e in ("backup-app", "prune-backups")) == sorted(
        m.decode() for m in redis_conn.zrange(SCHEDULED_JOBS_KEY, 0, -1)
    )
    assert not redis_conn.exists(scheduler.scheduler_lock_key)
    assert redis_conn.hexists(scheduler.key, "death")


def test_a_json_scheduler_registers_and_fires_entries_as_json(redis_url, redis_conn, storage) -> None:
    clock = Clock(START)
    scheduler = make(redis_url, storage, clock, serializer="json")
    scheduler.reconcile()
    registered = Job.fetch(registration_id(ENV, "backup-app"), connection=redis_conn, serializer=JSONSerializer)
    assert ("backup-app", BACKUP_JOB) == (registered.meta["railyard_schedule"]["id"], registered.func_name)
    clock.at = datetime(2026, 11, 22, 3, 0, 1, tzinfo=UTC)
    scheduler.run_once()
    [job_id] = queued(redis_conn)
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert (BACKUP_JOB, {}) == (job.func_name, job.kwargs)
    assert datetime(2026, 11, 23, 3, 0, tzinfo=UTC) == next_runs(redis_conn, "json")["backup-app"]


def test_entries_registered_with_pickle_are_replaced_when_the_scheduler_switches_to_json(
    redis_url, redis_conn, storage
) -> None:
    make(redis_url, storage, Clock(START)).reconcile()
    report = make(redis_url, storage, Clock(START), serializer="json").reconcile()
    assert report is not None and ["backup-app", "prune-backups"] == report.added
    assert {"backup-app", "prune-backups"} == set(next_runs(redis_conn, "json"))
    assert {} == next_runs(redis_conn, "pickle")


def test_a_pickled_application_job_is_moved_to_its_queue_unread(redis_url, redis_conn, storage, tmp_path) -> None:
    """rq-scheduler writes pickles; a json scheduler neither unpickles nor drops them: the worker refuses them."""
    marker = tmp_path / "unpickled"
    app_job = Scheduler(connection=redis_conn).enqueue_at(
        datetime(2026, 11, 22, 0, 30), "jobs.diagnostics.ping", delay_s=MakeDir(marker)
    )
    scheduler = make(redis_url, storage, Clock(START), serializer="json")
    scheduler.run_once()
    assert [app_job.id] == Queue("default", connection=redis_conn).get_job_ids()
    assert redis_conn.zscore(SCHEDULED_JOBS_KEY, app_job.id) is None
    assert not marker.exists()


class MakeDir:
    """Unpickling this creates a directory."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))
