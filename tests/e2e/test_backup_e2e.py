"""The backup job through real processes: a plain RQ producer, `rq worker`, the CLI, S3 over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from tests.conftest import SENTINEL_PASSWORD, url_with_db
from tests.e2e.conftest import enqueue_plain, run_cli
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(240)


def wait_finished(conn: redis.Redis, job_id: str, timeout_s: float = 90) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=conn)
        if job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s}s")


def seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text, total numeric);"
            "INSERT INTO orders SELECT i, 'item ' || i, i * 1.25 FROM generate_series(1, 500) AS i"
        )


def test_string_path_backup_on_worker_is_listed_and_restorable(
    start_worker, redis_url, redis_conn, database_url, pg_admin_url, bucket, s3_env
) -> None:
    seed(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": f"s3://{bucket}/db", **s3_env}
    start_worker(env)
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    job = wait_finished(redis_conn, job_id)
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string

    listed = run_cli("backups", "list", "--json", env=env)
    assert 0 == listed.returncode, listed.stderr
    manifests = json.loads(listed.stdout)
    assert [job.return_value()["id"]] == [m["id"] for m in manifests]
    for field in ("id", "key", "database", "size", "sha256", "finished_at"):
        assert field in manifests[0]
    assert {"public.orders": 500} == manifests[0]["row_counts"]

    shown = run_cli("backups", "show", manifests[0]["id"], env=env)
    assert manifests[0]["sha256"] == json.loads(shown.stdout)["sha256"]

    target = url_with_db(pg_admin_url, f"{Path(database_url).name}_r")
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{Path(database_url).name}_r"')
    try:
        restored = run_cli("restore", "latest", "--target-url", target, "--yes", env=env)
        assert 0 == restored.returncode, restored.stderr
        with psycopg.connect(target) as conn:
            assert (500, 313.125) == conn.execute("SELECT count(*), avg(total)::float FROM orders").fetchone()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{Path(database_url).name}_r" WITH (FORCE)')


def test_cli_errors_are_one_clear_line(tmp_path, database_url) -> None:
    env = {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    missing = run_cli("restore", "no-such-backup", "--target-url", database_url, "--yes", env=env)
    assert 1 == missing.returncode
    assert missing.stderr.startswith("error: no backup 'no-such-backup'")
    assert "Traceback" not in missing.stderr

    both = run_cli("backup", "--schema-only", "--data-only", env=env)
    assert 1 == both.returncode
    assert "exclude each other" in both.stderr.splitlines()[0]

    exposed = run_cli("backup", "--database-url", database_url.replace("postgres@", "postgres:pw@"), env=env)
    assert "contains a password" in exposed.stderr and "pw@" not in exposed.stderr

    debug = run_cli("--debug", "backups", "show", "nope", env=env)
    assert 1 == debug.returncode and "Traceback" in debug.stderr


class ArgvWatcher:
    """Records the argv of every process on the machine while it runs."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        self.seen.add((entry / "cmdline").read_bytes())
            time.sleep(0.005)

    def __enter__(self) -> ArgvWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def all_redis_values(conn: redis.Redis) -> bytes:
    """Every key and value in a Redis database, whatever the type."""
    out = []
    for key in conn.scan_iter(count=1000):
        kind = conn.type(key)
        out.append(key)
        if kind == b"string":
            out.append(conn.get(key) or b"")
        elif kind == b"hash":
            out.extend(b for pair in conn.hgetall(key).items() for b in pair)
        elif kind == b"list":
            out.extend(conn.lrange(key, 0, -1))
        elif kind == b"set":
            out.extend(conn.smembers(key))
        elif kind == b"zset":
            out.extend(m for m, _ in conn.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            out.extend(repr(e).encode() for e in conn.xrange(key))
    return b"\n".join(out)


def test_secrets_never_leak(start_worker, pg_password_url, redis_password_url, bucket, s3_env) -> None:
    """Sentinel passwords for PostgreSQL and Redis and the AWS secret appear in no output, argv,
    Redis value or manifest, across in-process and queued backups, listing, restore and errors."""
    seed(pg_password_url)
    with psycopg.connect(pg_password_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS restored")
        conn.execute("CREATE DATABASE restored")
    aws_secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    env = {
        "REDIS_URL": redis_password_url,
        "DATABASE_URL": pg_password_url,
        "BACKUP_STORAGE_URL": f"s3://{bucket}/db",
        **s3_env,
    }
    outputs: list[str] = []
    with ArgvWatcher() as watcher, webhook_server() as hook:
        env = {**env, "ALERT_WEBHOOK_URL": hook.url + "/alert", "HEALTHCHECK_PING_URL": hook.url + "/ping"}
        worker = start_worker(env)
        failing = (  # enqueued from this process: a producer's argv would show the Redis URL
            Queue("backup", connection=redis.Redis.from_url(redis_password_url))
            .enqueue("jobs.backup.run_backup", kwargs={"schema_only": True, "data_only": True})
            .id
        )
        assert JobStatus.FAILED == wait_finished(redis.Redis.from_url(redis_password_url), failing).get_status()
        for args, extra in (
            (("backup",), {}),
            (("backup", "--enqueue"), {}),
            (("backups", "list", "--json"), {}),
            (("restore", "latest", "--yes"), {"RESTORE_TARGET_URL": url_with_db(pg_password_url, "restored")}),
            (("restore", "latest", "--yes"), {"RESTORE_TARGET_URL": url_with_db(pg_password_url, "missing_db")}),
            (("health",), {}),
            (("status", "--json"), {}),
            (("failed", "list", "--json"), {}),
            (("failed", "show", failing), {}),
        ):
            result = run_cli(*args, env={**env, **extra})
            outputs += [result.stdout, result.stderr]
            if args == ("backup", "--enqueue"):
                assert 0 == result.returncode, result.stderr
                job = wait_finished(redis.Redis.from_url(redis_password_url), result.stdout.strip())
                assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
        worker.stop()
        hook.wait_for(5)  # the failed job's start and fail pings and alert; start and success of the backup
    conn = redis.Redis.from_url(redis_password_url)
    stored = all_redis_values(conn)
    conn.flushdb()
    from railyard.core.storage.s3 import make_client

    client = make_client("path")
    manifests = [
        client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
        if o["Key"].endswith(".manifest.json")
    ]
    assert 2 == len(manifests)
    assert any(b"pg_dump" in argv for argv in watcher.seen), "the watcher saw no pg_dump: the check proves nothing"
    assert any(b"pg_restore" in argv for argv in watcher.seen)
    assert outputs[6].startswith("restored "), outputs[7]
    assert "does not exist" in outputs[9]  # the failing restore's error is there, without the password
    assert ["/alert", "/ping", "/ping/fail", "/ping/start", "/ping/start"] == sorted(hook.paths())
    assert '"healthy"' in outputs[12] and failing in outputs[14] and "Traceback" in outputs[16]
    haystacks = [*outputs, worker.text(), stored.decode(errors="replace"), *(m.decode() for m in manifests)]
    haystacks += [r.body.decode(errors="replace") for r in hook.received]
    haystacks += [argv.decode(errors="replace") for argv in watcher.seen]
    for secret in (SENTINEL_PASSWORD, aws_secret):
        leaks = [h[:200] for h in haystacks if secret in h]
        assert [] == leaks


def test_manual_enqueue_is_held_to_one_backup_per_period(redis_url, redis_conn, database_url, tmp_path) -> None:
    """`railyard backup --enqueue` twice in one period enqueues one backup; --extra asks for another."""
    from rq import Queue

    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    first = run_cli("backup", "--enqueue", env=env)
    second = run_cli("backup", "--enqueue", env=env)
    assert (0, 3) == (first.returncode, second.returncode), first.stderr + second.stderr
    assert f"already queued: {first.stdout.strip()}\n" == second.stdout
    assert "already enqueued" in second.stderr
    extra = run_cli("backup", "--enqueue", "--extra", env=env)
    assert extra.stdout.strip() != first.stdout.strip()
    assert 2 == Queue("backup", connection=redis_conn).count


def test_cli_restore_with_jobs(tmp_path, database_url, new_database) -> None:
    """`railyard restore --jobs 2` restores through pg_restore's parallel path into an empty database."""
    seed(database_url)
    env = {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path), "LOG_FORMAT": "json"}
    assert 0 == run_cli("backup", env=env).returncode
    env["RESTORE_PARALLEL_MIN_MB"] = "0"
    restored = run_cli("restore", "latest", "--target-url", new_database, "--yes", "--jobs", "2", env=env)
    assert 0 == restored.returncode, restored.stderr
    [started] = [json.loads(line) for line in restored.stderr.splitlines() if '"restore_started"' in line]
    assert 2 == started["jobs"]
    with psycopg.connect(new_database) as conn:
        assert (500,) == conn.execute("SELECT count(*) FROM orders").fetchone()
    bad = run_cli("restore", "latest", "--target-url", new_database, "--yes", "--jobs", "0", env=env)
    assert 2 == bad.returncode
    assert "--jobs" in bad.stderr


def test_backup_on_a_terminal_shows_percent_and_eta_below_its_log_lines(database_url, tmp_path) -> None:
    """stderr is a real terminal (a pty): progress has a percent and an ETA, and each log line is
    written after the progress line was erased, never glued to it."""
    import os
    import pty
    import subprocess

    from tests.e2e.conftest import ROOT, VENV_BIN, child_env

    seed(database_url)
    leader, follower = pty.openpty()
    env = child_env(DATABASE_URL=database_url, BACKUP_STORAGE_URL=str(tmp_path), LOG_FORMAT="console")
    proc = subprocess.Popen(
        [str(VENV_BIN / "railyard"), "backup"], env=env, stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT
    )
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child closed the terminal
        while data := os.read(leader, 65536):
            chunks.append(data)
    os.close(leader)
    assert 0 == proc.wait(timeout=60)
    screen = b"".join(chunks).decode(errors="replace")
    assert "backup: " in screen and "%) at " in screen and ", ETA " in screen
    for record in screen.split("\n"):
        for piece in record.split("\r\x1b[K")[1:-1]:  # everything drawn and then erased
            assert piece.startswith("backup: "), repr(piece)  # only progress is ever erased
    assert "backup_completed" in screen
