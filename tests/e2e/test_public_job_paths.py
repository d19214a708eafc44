"""Every public job path still resolves and runs, enqueued by string as producers and stored schedules do.

The README's job table is the list producers code against. Each path is enqueued twice: by a
plain rq producer (a process that never imports Railyard) and as an rq-scheduler entry stored
in Redis and then moved to its queue the way the scheduler does. The real `rq worker` from the
Procfile runs them all.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler

from railyard.core import registry
from tests.conftest import ROOT
from tests.e2e.conftest import enqueue_plain

pytestmark = pytest.mark.timeout(240)

README_PATHS = re.findall(r"^\| `(jobs\.[\w.]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
DONE = {JobStatus.FINISHED, JobStatus.FAILED}
# Jobs that run and then fail on purpose here, with the error their own code raises for these arguments.
EXPECTED_FAILURE = {"jobs.audio.process_audio": "no audio file with id '404'"}


def test_the_readme_job_table_is_the_registry() -> None:
    assert sorted(README_PATHS) == sorted(spec.func for spec in registry.SPECS)


def arguments(path: str, backup_key: str) -> dict[str, Any]:
    return {
        "jobs.backup.run_backup": {"database": None},
        "jobs.verify.verify_backup": {},
        "jobs.copy.copy_backup": {"key": backup_key},
        "jobs.migrate.run_migrations": {"backup": False},
        "jobs.audio.process_audio": {"audio_file_id": "404"},
        "jobs.retention.prune_backups": {"dry_run": True},
        "jobs.retention.purge_rows": {"dry_run": True},
        "jobs.diagnostics.ping": {"delay_s": 0},
    }.get(path, {})


def wait_done(conn: Redis, job_ids: list[str], timeout_s: float = 180) -> dict[str, Job]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = {job_id: Job.fetch(job_id, connection=conn) for job_id in job_ids}
        if all(job.get_status() in DONE for job in jobs.values()):
            return jobs
        time.sleep(0.2)
    waiting = {job.func_name: job.get_status() for job in jobs.values() if job.get_status() not in DONE}
    raise AssertionError(f"jobs not done after {timeout_s}s: {waiting}")


def outcome(job: Job) -> str:
    if job.get_status() == JobStatus.FINISHED:
        return "finished"
    return "failed: " + (job.latest_result().exc_string or "").strip().splitlines()[-1]  # type: ignore[union-attr]


def test_every_documented_path_runs_from_a_plain_producer_and_a_stored_schedule(
    start_worker: Any, database_url: str, redis_url: str, redis_conn: Redis, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g")
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, created_at timestamptz NOT NULL)")
        conn.execute("INSERT INTO events SELECT g, now() - g * interval '1 day' FROM generate_series(1, 60) g")
    retention = tmp_path / "retention.toml"
    retention.write_text('[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "1mo"\n')
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "backups"),
        "BACKUP_COPY_STORAGE_URL": str(tmp_path / "copies"),
        "AUDIO_STORAGE_URL": str(tmp_path / "audio"),
        "RETENTION_CONFIG": str(retention),
        "RAILYARD_RETRY_BACKOFF_SCALE": "0.01",
    }
    start_worker(env, ("--with-scheduler",))

    # A backup first, so that the copy and the verification have something to work on.
    [first] = wait_done(redis_conn, [enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")]).values()
    assert "finished" == outcome(first), first.latest_result()
    backup_key = first.return_value()["key"]  # type: ignore[index]

    plain, stored = {}, {}
    for spec in registry.SPECS:
        kwargs = arguments(spec.func, backup_key)
        queue = "backup" if spec.queue == "any" else spec.queue
        plain[spec.func] = enqueue_plain(redis_url, queue, spec.func, **kwargs)
        entry = Scheduler(queue_name=queue, connection=redis_conn).enqueue_at(
            datetime(2020, 1, 1, tzinfo=UTC), spec.func, **kwargs
        )
        stored[spec.func] = entry.id
    assert len(stored) == Scheduler(connection=redis_conn).count()
    Scheduler(connection=redis_conn).enqueue_jobs()  # what the scheduler service does with due entries
    assert 0 == Scheduler(connection=redis_conn).count()

    done = wait_done(redis_conn, [*plain.values(), *stored.values()])
    for how, ids in (("plain rq", plain), ("rq-scheduler", stored)):
        outcomes = {path: outcome(done[job_id]) for path, job_id in ids.items()}
        wrong = {path: text for path, text in outcomes.items() if EXPECTED_FAILURE.get(path, "finished") not in text}
        assert {} == wrong, f"{how}: {outcomes}"
