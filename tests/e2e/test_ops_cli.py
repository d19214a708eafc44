"""`railyard status` and `railyard failed`, alerts and pings, against a real worker, Redis and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.job import Job, JobStatus

from jobs.backup.catalog import VERIFIED_SUFFIX
from railyard.core.liveness import record_worker_seen
from railyard.core.storage import StorageLocation, open_store
from tests.e2e.conftest import enqueue_plain, run_cli
from tests.e2e.test_backup_e2e import seed, wait_finished
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(180)

NO_SERVICES = {"STATUS_WORKER_MISSING_AFTER": "off", "STATUS_REQUIRE_SCHEDULE": "false"}


def test_status_shows_queues_workers_backups_and_exits_1_when_stale(
    start_worker, redis_url, redis_conn, database_url, tmp_path
) -> None:
    seed(database_url)
    store_url = str(tmp_path / "store")
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": store_url,
        "STATUS_REQUIRE_SCHEDULE": "false",  # no scheduler here
    }
    backed_up = run_cli("backup", "--json", env=env)
    assert 0 == backed_up.returncode, backed_up.stderr
    manifest = json.loads(backed_up.stdout)
    worker = start_worker(env)
    running = enqueue_plain(redis_url, "backup", "jobs.diagnostics.ping", delay_s=4)
    worker.wait_for(lambda line: line.get("event") == "ping_started")
    waiting = enqueue_plain(redis_url, "retention", "jobs.diagnostics.ping")

    result = run_cli("status", "--json", env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert (True, []) == (status["healthy"], status["problems"])
    queues = {q["name"]: q for q in status["queues"]}
    assert ["backup", "retention", "migration", "audio"] == list(queues)
    assert (1, 0) == (queues["retention"]["depth"], queues["backup"]["depth"])
    assert 0 <= queues["retention"]["oldest_waiting_s"] < 30
    [w] = status["workers"]
    assert (running, "jobs.diagnostics.ping", True) == (w["current_job"], w["current_func"], w["alive"])
    assert w["since"] is not None
    [b] = status["backups"]
    assert (manifest["database"], manifest["id"], manifest["size"], False, None) == (
        b["database"],
        b["id"],
        b["size"],
        b["stale"],
        b["verified"],
    )
    scheduled = [e["id"] for e in status["scheduled"]]  # declared, as `railyard schedule list` shows them
    assert scheduled[0].startswith("backup-") and {"prune-backups", "verify-backups", "check-staleness"} <= set(
        scheduled
    )
    assert {"count": 0, "newest": []} == status["failed"]
    wait_finished(redis_conn, waiting)

    time.sleep(1.2)
    stale = run_cli("status", env={**env, "BACKUP_STALE_AFTER": "1s"})
    assert 1 == stale.returncode
    assert "STALE" in stale.stdout
    assert f"the newest backup of database {manifest['database']} is" in stale.stderr


def test_status_exits_1_when_the_latest_verification_failed(redis_url, database_url, tmp_path) -> None:
    seed(database_url)
    store_url = str(tmp_path / "store")
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": store_url, **NO_SERVICES}
    manifest = json.loads(run_cli("backup", "--json", env=env).stdout)
    marker = {
        "backup_id": manifest["id"],
        "database": manifest["database"],
        "key": manifest["key"],
        "verified_at": manifest["finished_at"],
        "result": "failed",
        "tables_compared": 1,
        "mismatches": [],
        "error": "checksum mismatch",
    }
    open_store(StorageLocation.parse(store_url)).put_bytes(
        manifest["key"] + VERIFIED_SUFFIX, json.dumps(marker).encode()
    )
    result = run_cli("status", "--json", env=env)
    assert 1 == result.returncode
    status = json.loads(result.stdout)
    assert "failed" == status["backups"][0]["verified"]
    assert [f"the latest verification of database {manifest['database']} failed"] == [
        p.split(" (")[0] for p in status["problems"]
    ]


def test_status_exits_1_with_no_worker_seen_or_the_schedule_not_registered(
    redis_url, redis_conn, database_url, tmp_path
) -> None:
    """Each condition is a problem of its own, can be turned off, and the schedule prints its fields."""
    seed(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    assert 0 == run_cli("backup", env=env).returncode
    never = run_cli("status", env=env)
    assert 1 == never.returncode
    assert "no worker has been seen ever (STATUS_WORKER_MISSING_AFTER=10m)" in never.stderr
    assert "declared but not registered: start the scheduler service" in never.stderr
    schedule = never.stdout.split("SCHEDULED")[1].split("BACKUPS")[0].splitlines()[1:]
    assert "check-staleness" in "".join(schedule)
    for line in schedule:
        assert (False, "jobs.", "not registered", "next 20") == (
            "None" in line,
            line.split()[1][:5],
            line.split(None, 2)[2][:14],
            "next " + line.split("next ")[1][:2],
        )

    record_worker_seen(redis_conn, datetime.now(UTC) - timedelta(minutes=20))
    long_ago = json.loads(run_cli("status", "--json", env={**env, "STATUS_REQUIRE_SCHEDULE": "false"}).stdout)
    assert [p.split(" (")[0] for p in long_ago["problems"]] == ["no worker has been seen for 20m"]
    assert 1199 < long_ago["worker_last_seen_s"] < 1300
    recent = run_cli("status", env={**env, "STATUS_WORKER_MISSING_AFTER": "30m", "STATUS_REQUIRE_SCHEDULE": "no"})
    assert 0 == recent.returncode, recent.stderr
    assert 0 == run_cli("status", env={**env, **NO_SERVICES}).returncode
    bad = run_cli("status", env={**env, "STATUS_WORKER_MISSING_AFTER": "soon"})
    assert (2, True) == (bad.returncode, "STATUS_WORKER_MISSING_AFTER" in bad.stderr)


def test_status_reports_unreachable_redis_as_a_problem(tmp_path) -> None:
    from tests.conftest import free_port

    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "BACKUP_STORAGE_URL": str(tmp_path)}
    result = run_cli("status", "--json", env=env)
    assert 1 == result.returncode
    problems = json.loads(result.stdout)["problems"]
    assert problems[0].startswith("Redis could not be read (ConnectionError")


def test_failed_jobs_list_show_retry_purge_and_alerts(start_worker, redis_url, redis_conn, tmp_path) -> None:
    """Final failures alert once each; `railyard failed` lists, shows, retries and purges them."""
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    with webhook_server() as hook:
        start_worker({**env, "ALERT_WEBHOOK_URL": hook.url + "/alerts"})
        refused = enqueue_plain(redis_url, "audio", "pathlib.Path.touch", self=str(tmp_path / "ran"))
        bad = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup", schema_only=True, data_only=True)
        for job_id in (refused, bad):
            assert JobStatus.FAILED == wait_finished(redis_conn, job_id).get_status()
        hook.wait_for(2)
        events = sorted((p["details"]["job_id"], p["event"]) for p in hook.payloads())
        assert sorted([(refused, "job_failed"), (bad, "job_failed")]) == events
        by_id = {p["details"]["job_id"]: p for p in hook.payloads()}
        assert "exclude each other" in by_id[bad]["text"]
        # A permanent error on the first of three attempts: the alert counts the one attempt made.
        assert 1 == by_id[bad]["details"]["attempts"]
        assert "failed after 1 attempt: " in by_id[bad]["text"]
        assert by_id[bad]["text"] == by_id[bad]["content"]

        listed = run_cli("failed", "list", "--json", env=env)
        assert 0 == listed.returncode, listed.stderr
        rows = {row["id"]: row for row in json.loads(listed.stdout)}
        assert {refused, bad} == set(rows)
        assert rows[refused]["error"].startswith("refused: 'pathlib.Path.touch' is not a Railyard job")
        assert "\n" not in rows[bad]["error"] and "exclude each other" in rows[bad]["error"]
        assert ("backup", "jobs.backup.run_backup") == (rows[bad]["queue"], rows[bad]["func"])

        shown = run_cli("failed", "show", bad, env=env)
        assert "Traceback" in json.loads(shown.stdout)["traceback"]

        retried = run_cli("failed", "retry", bad, env=env)
        assert (0, f"requeued {bad} on backup") == (retried.returncode, retried.stdout.strip())
        hook.wait_for(3)  # it failed again, for good: a second alert
        assert JobStatus.FAILED == wait_finished(redis_conn, bad).get_status()

        not_ours = run_cli("failed", "retry", refused, env=env)
        assert 1 == not_ours.returncode
        assert not_ours.stderr.startswith(f"error: job {refused} runs 'pathlib.Path.touch', which is not a Railyard")

        missing = run_cli("failed", "show", "nope", env=env)
        assert (1, "error: no failed job 'nope'") == (missing.returncode, missing.stderr[:27])
        usage = run_cli("failed", "retry", env=env)
        assert 2 == usage.returncode and "give a JOB_ID or --all" in usage.stderr
        bad_duration = run_cli("failed", "purge", "--older-than", "a week", env=env)
        assert 1 == bad_duration.returncode
        assert bad_duration.stderr.startswith("error: 'a week' is not a duration")

        kept = run_cli("failed", "purge", "--older-than", "1h", env=env)
        assert "purged 0 failed jobs older than 1h" == kept.stdout.strip()
        time.sleep(1.1)
        purged = run_cli("failed", "purge", "--older-than", "1s", env=env)
        assert "purged 2 failed jobs older than 1s" == purged.stdout.strip()
        assert [] == json.loads(run_cli("failed", "list", "--json", env=env).stdout)
        assert not Job.exists(bad, connection=redis_conn)
        assert not Path(tmp_path / "ran").exists()


def test_retry_all_requeues_every_railyard_job(start_worker, redis_url, redis_conn, tmp_path) -> None:
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    worker = start_worker(env)
    ids = [enqueue_plain(redis_url, "backup", "jobs.backup.run_backup", schema_only=True, data_only=True)]
    ids.append(enqueue_plain(redis_url, "audio", "os.getcwd"))
    for job_id in ids:
        wait_finished(redis_conn, job_id)
    worker.stop()
    result = run_cli("failed", "retry", "--all", env=env)
    assert 0 == result.returncode, result.stderr
    assert f"requeued {ids[0]}" == result.stdout.strip()
    assert f"skipped {ids[1]}: not a Railyard job" in result.stderr
    assert JobStatus.QUEUED == Job.fetch(ids[0], connection=redis_conn).get_status()


def test_backup_job_pings_start_success_and_fail(start_worker, redis_url, redis_conn, database_url, tmp_path) -> None:
    seed(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    with webhook_server() as hook:
        start_worker({**env, "HEALTHCHECK_PING_URL": hook.url + "/ping/abc"})
        ok = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
        assert JobStatus.FINISHED == wait_finished(redis_conn, ok).get_status()
        hook.wait_for(2)
        bad = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup", database="no_such_db_here")
        assert JobStatus.FAILED == wait_finished(redis_conn, bad).get_status()
        hook.wait_for(4)
    assert ["/ping/abc/start", "/ping/abc", "/ping/abc/start", "/ping/abc/fail"] == hook.paths()
    assert b"no_such_db_here" in hook.received[3].body
