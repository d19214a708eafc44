"""``railyard prune`` and ``railyard retention run`` as a user runs them, and the jobs on a real ``rq worker``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from rq.job import Job

from jobs.backup.catalog import BackupKey
from railyard.core.storage import StorageLocation
from railyard.core.storage.s3 import S3Store
from tests.conftest import AWS_TEST_ENV, PG_ADMIN_URL, ROOT, VENV_BIN
from tests.integration.test_prune import days_ago, keys, put_backup

PREFIX = "team/backups"
POLICY_ENV = {
    "BACKUP_KEEP_LAST": "1",
    "BACKUP_KEEP_DAILY": "2",
    "BACKUP_KEEP_WEEKLY": "0",
    "BACKUP_KEEP_MONTHLY": "0",
}


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a deployed service would have; nothing inherited that could change the outcome."""
    env = {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "ENVIRONMENT": "production",
        "LOG_FORMAT": "json",
        **extra,
    }
    return env


def railyard(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "railyard"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def s3_backups(bucket: str) -> tuple[S3Store, StorageLocation, list[BackupKey]]:
    store = S3Store(bucket, addressing_style="path")
    location = StorageLocation.parse(f"s3://{bucket}/{PREFIX}")
    made = [put_backup(store, location, "app", days_ago(n)) for n in range(5)]
    store.put_bytes(f"{PREFIX}/production/app/keep-me.txt", b"not a backup")
    return store, location, made


def s3_cli_env(bucket: str, s3_endpoint: str, **extra: str) -> dict[str, str]:
    settings = {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "S3_ADDRESSING_STYLE": "path",
        "BACKUP_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
        "DATABASE_URL": PG_ADMIN_URL,  # required in production; pruning never connects to it
        **POLICY_ENV,
    }
    return cli_env(**{**settings, **extra})


def test_prune_dry_run_then_prune_against_s3(bucket: str, s3_endpoint: str) -> None:
    store, _, made = s3_backups(bucket)
    env = s3_cli_env(bucket, s3_endpoint)
    before = keys(store)

    dry = railyard("prune", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [m.id for m in made[:2]] == [e["id"] for e in plan["keep"]]
    assert [["last", f"daily {days_ago(0):%Y-%m-%d}"], [f"daily {days_ago(1):%Y-%m-%d}"]] == [
        e["reasons"] for e in plan["keep"]
    ]
    assert [(m.id, m.key) for m in made[2:]] == [(e["id"], e["key"]) for e in plan["delete"]]
    assert keys(store) == before

    done = railyard("prune", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "app:",
        f"  {made[0].id}  keep: last, daily {days_ago(0):%Y-%m-%d}",
        f"  {made[1].id}  keep: daily {days_ago(1):%Y-%m-%d}",
        *(f"  {m.id}  delete" for m in made[2:]),
    ]
    assert "kept 2 backups, deleted 3 backups, 0 orphans and 0 incomplete uploads" in done.stderr
    expected = {f"{PREFIX}/production/app/keep-me.txt"} | {k for m in made[:2] for k in (m.key, m.manifest_key)}
    assert keys(store) == expected


def test_bad_policy_is_a_clear_error_and_deletes_nothing(bucket: str, s3_endpoint: str) -> None:
    store, _, _ = s3_backups(bucket)
    before = keys(store)
    env = s3_cli_env(bucket, s3_endpoint, BACKUP_KEEP_DAILY="seven", BACKUP_KEEP_WITHIN="2 weeks")
    result = railyard("prune", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "BACKUP_KEEP_DAILY='seven' is not a whole number; use e.g. BACKUP_KEEP_DAILY=7" in result.stderr
    assert "BACKUP_KEEP_WITHIN: '2 weeks' is not a duration" in result.stderr
    assert AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"] not in result.stderr
    assert keys(store) == before


def run_worker(redis_url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The worker exactly as the Procfile starts it, in burst mode on the retention queue."""
    argv = ["rq", "worker", "--config", "worker.rq_config", "--worker-class", "worker.RailyardWorker", "--burst"]
    return subprocess.run(
        [str(VENV_BIN / argv[0]), *argv[1:], "retention"],
        env={**env, "REDIS_URL": redis_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prune_enqueued_runs_on_the_worker(bucket: str, s3_endpoint: str, redis_url: str) -> None:
    store, _, made = s3_backups(bucket)
    env = s3_cli_env(bucket, s3_endpoint, REDIS_URL=redis_url)
    enqueued = railyard("prune", "--enqueue", env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    assert keys(store) >= {m.key for m in made}  # nothing ran in the CLI

    worker = run_worker(redis_url, env)
    assert worker.returncode == 0, worker.stderr
    with redis.Redis.from_url(redis_url) as conn:
        job = Job.fetch(job_id, connection=conn)
        assert job.get_status() == "finished", worker.stderr
        assert job.origin == "retention"
        assert job.timeout == 3600
        result = job.return_value()
    assert [m.id for m in made[2:]] == [e["id"] for e in result["delete"]]
    assert not {m.key for m in made[2:]} & keys(store)


def events_database(database_url: str, expired: int, fresh: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, note text)")
        conn.execute(
            "INSERT INTO events (created_at, note) SELECT now() - interval '40 days' - make_interval(secs => g), 'old' "
            "FROM generate_series(1, %s) g",
            [expired],
        )
        conn.execute(
            "INSERT INTO events (created_at, note) SELECT now() - interval '1 day', 'new' FROM generate_series(1, %s)",
            [fresh],
        )
        conn.execute("CREATE INDEX ON events (created_at)")


def counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT note, count(*) FROM events GROUP BY note").fetchall())


def wait_until(predicate: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_retention_run_killed_midway_loses_nothing_and_the_next_run_finishes(database_url: str, tmp_path: Path) -> None:
    events_database(database_url, expired=20_000, fresh=300)
    config = tmp_path / "retention.toml"
    config.write_text(
        '[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "30d"\nbatch_size = 200\npause_s = 0.05\n'
    )
    env = cli_env(DATABASE_URL=database_url, RETENTION_CONFIG=str(config))

    dry = railyard("retention", "run", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert [(p["table"], p["column"], p["rows"], p["indexed"]) for p in json.loads(dry.stdout)["policies"]] == [
        ("public.events", "created_at", 20_000, True)
    ]

    proc = subprocess.Popen([str(VENV_BIN / "railyard"), "retention", "run"], env=env, cwd=ROOT)
    try:
        wait_until(lambda: counts(database_url).get("old", 0) < 19_000)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def backend_gone() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'railyard-retention'"
            ).fetchone()
            return row is not None and row[0] == 0

    wait_until(backend_gone)
    left = counts(database_url)
    assert left["new"] == 300
    assert 0 < left["old"] < 19_000
    assert (20_000 - left["old"]) % 200 == 0  # whole batches only: the one in flight rolled back

    config.write_text('[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "30d"\n')
    again = railyard("purge", env=env)  # the same command as `retention run`, under its new name
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"public.events.created_at older than 30d (before {datetime.now(UTC):%Y}")
    assert f"deleted {left['old']} rows" in again.stdout
    assert counts(database_url) == {"new": 300}


def test_retention_run_refuses_a_table_that_does_not_exist(database_url: str, tmp_path: Path) -> None:
    events_database(database_url, expired=10, fresh=1)
    config = tmp_path / "retention.toml"
    config.write_text(
        '[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "30d"\n\n'
        '[[policy]]\ntable = "users; DROP TABLE events"\ncolumn = "created_at"\nmax_age = "1d"\n'
    )
    result = railyard("retention", "run", env=cli_env(DATABASE_URL=database_url, RETENTION_CONFIG=str(config)))
    assert result.returncode == 2
    assert (
        "error: configuration error: table 'users; DROP TABLE events' does not exist in the search_path; "
        "check the name in the retention config"
    ) in result.stderr
    assert counts(database_url) == {"old": 10, "new": 1}


@pytest.mark.parametrize("command", [("purge",), ("retention", "run")])
def test_purge_without_config_says_how_to_fix_it(database_url: str, command: tuple[str, ...]) -> None:
    result = railyard(*command, env=cli_env(DATABASE_URL=database_url))
    assert result.returncode == 2
    assert "RETENTION_CONFIG is not set; point it at a TOML file of [[policy]] tables" in result.stderr


def test_purge_enqueued_runs_on_the_worker(database_url: str, redis_url: str, tmp_path: Path) -> None:
    events_database(database_url, expired=1500, fresh=20)
    config = tmp_path / "retention.toml"
    config.write_text('[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "30d"\n')
    env = cli_env(DATABASE_URL=database_url, RETENTION_CONFIG=str(config), REDIS_URL=redis_url)
    enqueued = railyard("retention", "run", "--enqueue", env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    worker = run_worker(redis_url, env)
    assert worker.returncode == 0, worker.stderr
    with redis.Redis.from_url(redis_url) as conn:
        job = Job.fetch(enqueued.stdout.strip(), connection=conn)
        assert job.get_status() == "finished", worker.stderr
        assert job.timeout == 7200
        assert [p["rows"] for p in job.return_value()["policies"]] == [1500]
    assert counts(database_url) == {"new": 20}
