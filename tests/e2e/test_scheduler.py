"""The scheduler process exactly as the Procfile starts it, with the real worker and the CLI."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from railyard.core.storage import StorageLocation, open_store
from scheduler.registration import SCHEDULED_JOBS_KEY, registration_id
from scheduler.service import RailyardScheduler
from tests.conftest import SENTINEL_PASSWORD, free_port
from tests.e2e.conftest import SCHEDULER_ENVIRONMENT, run_cli
from tests.manifests import put_backup
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(180)

ENV = SCHEDULER_ENVIRONMENT
LOCK_KEY = RailyardScheduler.scheduler_lock_key


@pytest.fixture
def env(redis_url: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "backups"),
        "BACKUP_CATCH_UP": "false",
    }


def dbname(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1]


def registered(conn: redis.Redis) -> list[str]:
    return sorted(m.decode() for m in conn.zrange(SCHEDULED_JOBS_KEY, 0, -1))


def schedule_list(env: dict[str, str]) -> list[dict[str, Any]]:
    result = run_cli("schedule", "list", "--json", env=env)
    assert 0 == result.returncode, result.stderr
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def backup_jobs(conn: redis.Redis) -> list[str]:
    """Every backup job RQ holds, whatever its state; an id pushed twice counts twice."""
    queue = Queue("backup", connection=conn)
    ids = list(queue.get_job_ids())
    for reg in (queue.started_job_registry, queue.finished_job_registry, queue.failed_job_registry):
        ids.extend(reg.get_job_ids())
    return sorted(i for i in ids if i.startswith("backup-"))


def todays_period(now: datetime) -> str:
    """The start of the current period of the default BACKUP_CRON, 03:00 UTC daily."""
    start = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if start > now:
        start -= timedelta(days=1)
    return start.strftime("%Y%m%dT%H%MZ")


def seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 100) AS i")


# Entries every schedule has besides its backups (restore verification is registered).
MAINTENANCE = ("prune-backups", "verify-backups", "check-staleness")


def wait_until(condition: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s}s"
        time.sleep(0.2)


def test_restarts_and_two_schedulers_at_once_register_each_entry_once(
    start_scheduler, env, redis_conn, database_url
) -> None:
    expected = sorted(registration_id(ENV, e) for e in (f"backup-{dbname(database_url)}", *MAINTENANCE))
    for _ in range(3):
        assert 0 == start_scheduler(env).stop()
        assert expected == registered(redis_conn)
    one, two = start_scheduler(env), start_scheduler(env)
    time.sleep(1)  # several passes of both
    assert expected == registered(redis_conn)
    listed = schedule_list(env)
    assert [f"backup-{dbname(database_url)}", *MAINTENANCE] == [e["id"] for e in listed]
    assert {"registered"} == {e["state"] for e in listed}
    text = run_cli("schedule", "list", env=env).stdout.splitlines()
    assert text[0].split()[:3] == ["ID", "CRON", "TIMEZONE"]
    assert [f"backup-{dbname(database_url)}", *MAINTENANCE] == [line.split()[0] for line in text[1:]]
    assert all(["never", "registered"] == line.split()[-2:] for line in text[1:])
    assert (0, 0) == (one.stop(), two.stop())
    assert not redis_conn.exists(LOCK_KEY)


def test_a_changed_schedule_replaces_the_old_entries_on_restart(
    start_scheduler, env, redis_conn, database_url, pg_admin_url
) -> None:
    start_scheduler(env).stop()
    first = {e["id"]: e for e in schedule_list(env)}
    assert "0 3 * * *" == first[f"backup-{dbname(database_url)}"]["cron"]

    other = pg_admin_url.rsplit("/", 1)[0] + "/postgres"
    changed = {**env, "BACKUP_CRON": "15 1 * * 2", "SCHEDULE_TIMEZONE": "Europe/Paris", "DATABASE_URL": other}
    start_scheduler(changed).stop()
    assert sorted(registration_id(ENV, e) for e in ("backup-postgres", *MAINTENANCE)) == registered(redis_conn)
    now = {e["id"]: e for e in schedule_list(changed)}
    assert ["backup-postgres", *MAINTENANCE] == list(now)
    backup = now["backup-postgres"]
    assert ("15 1 * * 2", "Europe/Paris", "registered") == (backup["cron"], backup["timezone"], backup["state"])
    local = datetime.fromisoformat(backup["next_run_local"])
    assert (1, 15, 2) == (local.hour, local.minute, local.isoweekday())  # Tuesday
    assert datetime.fromisoformat(backup["next_run_utc"]) == local


def test_sigterm_stops_the_scheduler_and_leaves_no_lock(start_scheduler, env, redis_conn) -> None:
    for _ in range(3):
        proc = start_scheduler({**env, "SCHEDULER_INTERVAL_S": "0.01"})
        time.sleep(0.3)  # the lock is taken and released about every 10 ms
        assert 0 == proc.stop(signal.SIGTERM, timeout_s=30)
        assert not redis_conn.exists(LOCK_KEY)
        stamps = {
            line["event"]: datetime.fromisoformat(line["timestamp"]) for line in proc.lines() if "timestamp" in line
        }
        assert stamps["scheduler_stopped"] - stamps["scheduler_stopping"] < timedelta(seconds=2)
    instances = list(redis_conn.scan_iter(match="rq:scheduler_instance:*"))
    assert 3 == len(instances)
    assert all(redis_conn.hexists(key, "death") for key in instances)


def test_an_invalid_cron_stops_start_up_with_a_message_naming_the_variable(start_scheduler, env, redis_conn) -> None:
    proc = start_scheduler({**env, "BACKUP_CRON": "0 3 * *", "RETENTION_CRON": "every night"}, wait=False)
    assert 2 == proc.popen.wait(timeout=30)
    output = proc.text()
    assert "BACKUP_CRON='0 3 * *' has 4 fields" in output
    assert "RETENTION_CRON='every night' has 2 fields" in output
    assert [] == registered(redis_conn)


def test_a_due_entry_fires_and_the_worker_produces_a_listed_backup(
    start_scheduler, start_worker, env, redis_conn, database_url
) -> None:
    seed(database_url)
    start_worker(env)
    start_scheduler(env)
    entry_id = f"backup-{dbname(database_url)}"
    redis_conn.zadd(SCHEDULED_JOBS_KEY, {registration_id(ENV, entry_id): time.time() - 1})  # its cron time came
    job_id = f"backup-{ENV}-{dbname(database_url)}-{todays_period(datetime.now(UTC))}"

    wait_until(lambda: Job.exists(job_id, connection=redis_conn), what="the backup job was enqueued")
    job = Job.fetch(job_id, connection=redis_conn)
    wait_until(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), what="the backup finished")
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string

    listed = run_cli("backups", "list", "--json", env=env)
    assert 0 == listed.returncode, listed.stderr
    manifests = json.loads(listed.stdout)
    assert [job.return_value()["id"]] == [m["id"] for m in manifests]
    assert {"public.notes": 100} == manifests[0]["row_counts"]

    entry = {e["id"]: e for e in schedule_list(env)}[entry_id]
    assert {"reason": "cron", "job_id": job_id, "outcome": "finished"} == {
        k: entry["last_run"][k] for k in ("reason", "job_id", "outcome")
    }
    assert datetime.fromisoformat(entry["next_run_utc"]) > datetime.now(UTC)


def test_the_staleness_check_entry_fires_and_alerts_about_a_database_without_backups(
    start_scheduler, start_worker, env, redis_conn, database_url
) -> None:
    with webhook_server() as hook:
        start_worker({**env, "ALERT_WEBHOOK_URL": hook.url + "/alerts"})
        start_scheduler(env)
        redis_conn.zadd(SCHEDULED_JOBS_KEY, {registration_id(ENV, "check-staleness"): time.time() - 1})  # it is :15

        def last_run() -> dict[str, Any]:
            return {e["id"]: e for e in schedule_list(env)}["check-staleness"]["last_run"] or {}

        wait_until(lambda: last_run().get("outcome") == "finished", what="the staleness check ran")
        [alert] = hook.wait_for(1)
        payload = alert.json()
        assert ("backup_stale", dbname(database_url)) == (payload["event"], payload["details"]["database"])
        assert f"database {dbname(database_url)} has no backup at all" in payload["text"]
        assert {"stale": [dbname(database_url)], "alerted": [dbname(database_url)]} == Job.fetch(
            last_run()["job_id"], connection=redis_conn
        ).return_value()


def test_catch_up_enqueues_one_backup_when_stale_and_none_when_fresh(
    start_scheduler, env, redis_conn, database_url
) -> None:
    db = dbname(database_url)
    storage = env["BACKUP_STORAGE_URL"]
    store, location = open_store(storage), StorageLocation.parse(storage)
    now = datetime.now(UTC)
    put_backup(store, location, environment=ENV, database=db, finished_at=now - timedelta(hours=30))
    catch_up = {**env, "BACKUP_CATCH_UP": "true", "CATCH_UP_INTERVAL_S": "0.3"}

    fired = []
    for _ in range(2):  # a restart catches up again: still one backup for the period
        proc = start_scheduler(catch_up)
        wait_until(lambda p=proc: sum(line.get("event") == "catch_up_checked" for line in p.lines()) >= 3)
        assert 0 == proc.stop()
        fired += [line for line in proc.lines() if line.get("event") == "schedule_fired"]
    job_id = f"backup-{ENV}-{db}-{todays_period(now)}"
    assert [job_id] == backup_jobs(redis_conn)
    assert [(job_id, "catch-up")] == [(line["job_id"], line["reason"]) for line in fired]

    redis_conn.flushdb()
    put_backup(store, location, environment=ENV, database=db, finished_at=now - timedelta(hours=2))
    proc = start_scheduler(catch_up)
    wait_until(lambda: sum(line.get("event") == "catch_up_checked" for line in proc.lines()) >= 3)
    assert 0 == proc.stop()
    assert [] == backup_jobs(redis_conn)
    checked = [line for line in proc.lines() if line.get("event") == "catch_up_checked"]
    assert {(1, 0)} == {(line["databases"], line["enqueued"]) for line in checked}


def test_two_triggers_in_the_same_period_make_one_backup(
    start_scheduler, start_worker, env, redis_conn, database_url
) -> None:
    seed(database_url)
    entry_id = f"backup-{dbname(database_url)}"
    start_scheduler(env)
    first = run_cli("schedule", "run", entry_id, env=env)
    second = run_cli("schedule", "run", entry_id, env=env)
    assert (0, 0) == (first.returncode, second.returncode), first.stderr + second.stderr
    job_id = f"backup-{ENV}-{dbname(database_url)}-{todays_period(datetime.now(UTC))}"
    assert f"enqueued {job_id} (jobs.backup.run_backup)" == first.stdout.strip()
    assert second.stdout.startswith(f"already enqueued for this period: {job_id}")
    redis_conn.zadd(SCHEDULED_JOBS_KEY, {registration_id(ENV, entry_id): time.time() - 1})  # and the cron fires

    start_worker(env)
    job = Job.fetch(job_id, connection=redis_conn)
    wait_until(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), what="the backup finished")
    wait_until(lambda: redis_conn.zscore(SCHEDULED_JOBS_KEY, registration_id(ENV, entry_id)) > time.time())
    assert [job_id] == backup_jobs(redis_conn)
    listed = run_cli("backups", "list", "--json", env=env)
    assert 1 == len(json.loads(listed.stdout)), listed.stderr


def test_schedule_run_of_an_unknown_entry_names_the_known_ones(env, database_url) -> None:
    result = run_cli("schedule", "run", "backup-nowhere", env=env)
    assert 1 == result.returncode
    assert (
        f"error: no schedule entry 'backup-nowhere' in environment '{ENV}'; known entries: "
        f"{', '.join(sorted([f'backup-{dbname(database_url)}', *MAINTENANCE]))}\n"
    ) == result.stderr


def test_unreachable_redis_stops_start_up_without_printing_the_password(start_scheduler, env) -> None:
    url = f"redis://:{SENTINEL_PASSWORD}@127.0.0.1:{free_port()}/0"
    proc = start_scheduler({**env, "REDIS_URL": url}, wait=False)
    assert 1 == proc.popen.wait(timeout=60)
    failed = [line for line in proc.lines() if line.get("event") == "scheduler_failed"]
    assert 1 == len(failed), proc.text()
    assert "Connection refused" in failed[0]["error"]
    assert SENTINEL_PASSWORD not in proc.text()
