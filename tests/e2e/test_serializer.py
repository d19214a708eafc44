"""RAILYARD_SERIALIZER=json through real processes: producers, `rq worker`, the scheduler and the CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from scheduler.registration import SCHEDULED_JOBS_KEY, registration_id
from tests.conftest import ROOT
from tests.e2e.conftest import child_env, kill_group, procfile_command, run_cli, run_producer
from tests.e2e.test_backup_e2e import seed
from tests.e2e.test_scheduler import ENV, dbname, todays_period, wait_until
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(240)

JSON = {"RAILYARD_SERIALIZER": "json"}

# A producer that knows nothing of Railyard: plain rq, its default (pickle) serializer, and an
# argument whose unpickling would create the directory named in argv[2].
PICKLE_PRODUCER = """
import os, sys
from redis import Redis
from rq import Queue

class Payload:
    def __reduce__(self):
        return (os.mkdir, (sys.argv[2],))

queue = Queue("backup", connection=Redis.from_url(sys.argv[1]))
job = queue.enqueue("jobs.diagnostics.ping", kwargs={"delay_s": Payload()})
ours = [m for m in sys.modules if m.split(".")[0] in ("railyard", "jobs", "worker", "scheduler")]
assert not ours, ours
print(job.id)
"""

# A Python service that installed Railyard and enqueues through railyard.core.client, with its own environment.
CLIENT_PRODUCER = """
import json, sys
from redis import Redis
from railyard.core import client
job = client.enqueue(sys.argv[2], Redis.from_url(sys.argv[1]), **json.loads(sys.argv[3]))
print(job.id)
"""


def enqueue_pickled_payload(redis_url: str, marker: Path) -> str:
    return run_producer(PICKLE_PRODUCER, redis_url, str(marker))


def enqueue_with_client(redis_url: str, func: str, env: dict[str, str], **kwargs: Any) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_PRODUCER, redis_url, func, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=child_env(**env),
    )
    return out.stdout.strip()


def fetch(conn: redis.Redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=conn, serializer=JSONSerializer)


def wait_done(conn: redis.Redis, job_id: str, timeout_s: float = 90) -> Job:
    wait_until(
        lambda: fetch(conn, job_id).get_status() in (JobStatus.FINISHED, JobStatus.FAILED),
        timeout_s,
        f"job {job_id} finished",
    )
    return fetch(conn, job_id)


def stored_data(conn: redis.Redis, job_id: str) -> bytes:
    """The job's function and arguments exactly as Redis holds them."""
    raw = conn.hget(f"rq:job:{job_id}", "data")
    assert raw is not None
    return zlib.decompress(raw)


def cli_json(*args: str, env: dict[str, str]) -> Any:
    result = run_cli(*args, "--json", env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_a_pickled_job_is_refused_unread_by_a_json_worker(start_worker, redis_url, redis_conn, tmp_path) -> None:
    """A plain-rq producer's pickle never reaches pickle.loads: the job fails clearly, nothing runs."""
    marker = tmp_path / "unpickled"
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path / "store"), **JSON}
    with webhook_server() as hook:
        worker = start_worker({**env, "ALERT_WEBHOOK_URL": hook.url + "/alerts"})
        job_id = enqueue_pickled_payload(redis_url, marker)
        refused = worker.wait_for(lambda line: line.get("event") == "job_refused" and line.get("job_id") == job_id)
        assert JobStatus.FAILED == wait_done(redis_conn, job_id).get_status()
        hook.wait_for(1)
        [alert] = hook.payloads()

    reason = refused["reason"]
    assert reason.startswith("refused: the job's data is not JSON, so it was neither unpickled nor run")
    assert "<unreadable>" == refused["func"]
    assert ("job_failed", job_id, "<unreadable>", {}) == (
        alert["event"],
        alert["details"]["job_id"],
        alert["details"]["func"],
        alert["details"]["kwargs"],
    )
    [row] = cli_json("failed", "list", env=env)
    assert (job_id, "backup", "<unreadable>", {}, reason) == (
        row["id"],
        row["queue"],
        row["func"],
        row["args"],
        row["error"],
    )
    retried = run_cli("failed", "retry", job_id, env=env)
    assert 1 == retried.returncode
    assert retried.stderr.startswith(f"error: job {job_id} cannot be read with RAILYARD_SERIALIZER=json")
    assert "ping_started" not in worker.text()

    # The worker is still serving: a job written as JSON runs.
    ok = enqueue_with_client(redis_url, "jobs.diagnostics.ping", env)
    assert JobStatus.FINISHED == wait_done(redis_conn, ok).get_status()
    assert worker.popen.poll() is None

    assert not marker.exists()
    pickle.loads(stored_data(redis_conn, job_id))  # noqa: S301 -- proves the payload was live
    assert marker.exists()


def test_backups_from_jobs_client_the_scheduler_and_the_cli_run_as_json(
    start_worker, start_scheduler, redis_url, redis_conn, database_url, tmp_path
) -> None:
    seed(database_url)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "backups"),
        "BACKUP_CATCH_UP": "false",
        "ENVIRONMENT": ENV,
        **JSON,
    }
    worker = start_worker(env)
    start_scheduler(env)

    from_client = enqueue_with_client(redis_url, "jobs.backup.run_backup", env, tables=["public.*"])
    assert ["jobs.backup.run_backup", None, [], {"tables": ["public.*"]}] == json.loads(
        stored_data(redis_conn, from_client)
    )
    entry_id = f"backup-{dbname(database_url)}"
    redis_conn.zadd(SCHEDULED_JOBS_KEY, {registration_id(ENV, entry_id): time.time() - 1})  # its cron time came
    from_scheduler = f"backup-{ENV}-{dbname(database_url)}-{todays_period(datetime.now(UTC))}"
    wait_until(lambda: Job.exists(from_scheduler, connection=redis_conn), what="the scheduler enqueued the backup")
    assert ["jobs.backup.run_backup", None, [], {}] == json.loads(stored_data(redis_conn, from_scheduler))
    enqueued = run_cli("backup", "--enqueue", "--extra", env=env)
    assert 0 == enqueued.returncode, enqueued.stderr
    from_cli = enqueued.stdout.strip()
    json.loads(stored_data(redis_conn, from_cli))

    ids = [from_client, from_scheduler, from_cli]
    for job_id in ids:
        job = wait_done(redis_conn, job_id)
        assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
    results = [fetch(redis_conn, job_id).return_value() for job_id in ids]
    listed = cli_json("backups", "list", env=env)
    # Two backups taken within the same second share an id, so compare sets.
    assert {r["id"] for r in results} == {m["id"] for m in listed}
    assert [{"public.orders": 500}] * 3 == [r["row_counts"] for r in results]

    entry = {e["id"]: e for e in cli_json("schedule", "list", env=env)}[entry_id]
    assert ("registered", "cron", from_scheduler, "finished") == (
        entry["state"],
        entry["last_run"]["reason"],
        entry["last_run"]["job_id"],
        entry["last_run"]["outcome"],
    )
    again = run_cli("schedule", "run", entry_id, env=env)
    assert f"already enqueued for this period: {from_scheduler} (finished)" in again.stdout

    pruned = run_cli("prune", "--dry-run", "--enqueue", env=env)
    assert 0 == pruned.returncode, pruned.stderr
    prune_job = wait_done(redis_conn, pruned.stdout.strip())
    assert JobStatus.FINISHED == prune_job.get_status(), prune_job.latest_result().exc_string
    assert {m["id"] for m in listed} == {b["id"] for b in prune_job.return_value()["keep"]}
    assert not [line for line in worker.lines() if line.get("event") == "job_refused"]


def test_status_and_failed_commands_read_json_jobs(start_worker, redis_url, redis_conn, tmp_path) -> None:
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path / "store"), **JSON}
    worker = start_worker(env)
    bad = enqueue_with_client(redis_url, "jobs.backup.run_backup", env, schema_only=True, data_only=True)
    assert JobStatus.FAILED == wait_done(redis_conn, bad).get_status()
    probe = enqueue_with_client(redis_url, "jobs.diagnostics.retry_probe", env)  # retried through rq's scheduler
    assert JobStatus.FINISHED == wait_done(redis_conn, probe).get_status()
    assert {"attempt": 2, "job_id": probe} == fetch(redis_conn, probe).return_value()
    running = enqueue_with_client(redis_url, "jobs.diagnostics.ping", env, delay_s=8)
    worker.wait_for(lambda line: line.get("event") == "ping_started" and line.get("job_id") == running)

    status = json.loads(run_cli("status", "--json", env=env).stdout)
    [w] = status["workers"]
    assert (running, "jobs.diagnostics.ping") == (w["current_job"], w["current_func"])
    [newest] = status["failed"]["newest"]
    assert (1, bad, "jobs.backup.run_backup") == (status["failed"]["count"], newest["id"], newest["func"])

    [row] = cli_json("failed", "list", env=env)
    assert ("jobs.backup.run_backup", {"schema_only": True, "data_only": True}) == (row["func"], row["args"])
    assert "exclude each other" in row["error"]
    shown = json.loads(run_cli("failed", "show", bad, env=env).stdout)
    assert ({"schema_only": True, "data_only": True}, True) == (shown["args"], "Traceback" in shown["traceback"])
    # A command left on pickle reads none of these jobs' data: it lists the job as unreadable.
    [mismatched] = cli_json("failed", "list", env={**env, "RAILYARD_SERIALIZER": "pickle"})
    assert (bad, "<unreadable>", {}) == (mismatched["id"], mismatched["func"], mismatched["args"])

    retried = run_cli("failed", "retry", bad, env=env)
    assert f"requeued {bad} on backup" == retried.stdout.strip(), retried.stderr
    assert JobStatus.FAILED == wait_done(redis_conn, bad).get_status()
    failures = [line for line in worker.lines() if line.get("event") == "job_failed" and line.get("job_id") == bad]
    assert [1, 1] == [line["attempt"] for line in failures]  # a fresh retry budget: first attempt again
    time.sleep(1.1)
    purged = run_cli("failed", "purge", "--older-than", "1s", env=env)
    assert "purged 1 failed jobs older than 1s" == purged.stdout.strip()
    assert [] == cli_json("failed", "list", env=env)


def test_a_disagreeing_or_unknown_serializer_stops_start_up(redis_url, tmp_path) -> None:
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out:
        popen = subprocess.Popen(
            [*procfile_command("worker"), "--serializer", "json"],
            env=child_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        assert 0 != popen.wait(timeout=60)
    finally:
        kill_group(popen)
    assert "rq worker --serializer 'json' disagrees with RAILYARD_SERIALIZER=pickle" in log_path.read_text()

    for argv in (procfile_command("worker"), procfile_command("scheduler")):
        bad = subprocess.run(
            argv, env=child_env(**env, RAILYARD_SERIALIZER="yaml"), capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert 2 == bad.returncode
        assert "RAILYARD_SERIALIZER='yaml' is not one of pickle, json" in bad.stderr
    cli = run_cli("status", env={**env, "RAILYARD_SERIALIZER": "yaml"})
    assert 2 == cli.returncode
    assert "RAILYARD_SERIALIZER='yaml' is not one of pickle, json" in cli.stderr
