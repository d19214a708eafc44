"""Fault injection with real processes: a backup survives a killed worker, a deploy, an S3 outage and a
full disk, and nothing half-written is ever listed as a backup.

S3 is the session's moto server behind a local proxy (tests/faultproxy.py) that slows each
uploaded part, so a backup lasts long enough to be interrupted, and that can be stopped and
started again on the same port to make S3 unreachable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from jobs.backup.catalog import MANIFEST_SUFFIX, list_backups
from railyard.core.storage import StorageLocation, open_store
from tests.e2e.conftest import enqueue_plain, run_cli
from tests.e2e.test_abandoned import FAST_CLEANUP_ARGS, FAST_CLEANUP_ENV, kill_everything
from tests.faultproxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

PART_DELAY_S = 1.2
ROWS = 32_000  # ~32 MB of incompressible data: four 8 MiB parts, about 5 s through the slow proxy


def seed_incompressible(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE blobs (id int PRIMARY KEY, data bytea);"
            "INSERT INTO blobs SELECT i, (SELECT decode(string_agg(md5(random()::text || i || j), ''), 'hex') "
            f"FROM generate_series(1, 64) AS j) FROM generate_series(1, {ROWS}) AS i"
        )


def slow_parts(method: str, path: str) -> bool:
    if method == "PUT" and "partNumber=" in path:
        time.sleep(PART_DELAY_S)
    return False


@pytest.fixture
def slow_s3(s3_endpoint: str, s3_env: dict[str, str], bucket: str) -> Iterator[tuple[FaultProxy, dict[str, str]]]:
    with FaultProxy(s3_endpoint, slow_parts) as proxy:
        env = {
            **s3_env,
            "AWS_ENDPOINT_URL_S3": proxy.url,
            "BACKUP_STORAGE_URL": f"s3://{bucket}/db",
            "BACKUP_PART_SIZE_MB": "8",
            "BACKUP_UPLOAD_CONCURRENCY": "1",
        }
        yield proxy, env


def wait_status(conn: redis.Redis, job_id: str, statuses: set[JobStatus], timeout_s: float = 90) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=conn)
        if job.get_status() in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.get_status()} after {timeout_s}s")


def store_for(env: dict[str, str]):  # type: ignore[no-untyped-def]
    location = StorageLocation.parse(env["BACKUP_STORAGE_URL"])
    return open_store(location, addressing_style="path"), location


def backup_under_way(start_worker, redis_url, database_url, s3, *, defaults: bool = False):  # type: ignore[no-untyped-def]
    """A worker running a backup through the slow proxy: (worker, env, job id, backup key).

    The worker cleans up every few seconds, or with ``defaults`` runs exactly as the Procfile
    starts it with no tuning variable set.
    """
    seed_incompressible(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, **s3, **({} if defaults else FAST_CLEANUP_ENV)}
    worker = start_worker(env, () if defaults else FAST_CLEANUP_ARGS)
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    started = worker.wait_for(lambda line: line.get("event") == "backup_started", timeout_s=60)
    wait_for_upload(s3, started["key"])
    return worker, env, job_id, started["key"]


def wait_for_upload(s3: dict[str, str], key: str, timeout_s: float = 60) -> None:
    """Until the backup's multipart upload exists: a kill from then on leaves it incomplete."""
    with mock.patch.dict(os.environ, {"AWS_ENDPOINT_URL_S3": s3["AWS_ENDPOINT_URL_S3"]}):
        store, location = store_for(s3)
        deadline = time.monotonic() + timeout_s
        while key not in [u.key for u in store.list_incomplete_uploads(location.key())]:
            assert time.monotonic() < deadline, f"no upload of {key} began within {timeout_s}s"
            time.sleep(0.2)


RESCUE_DEADLINE_S = 120  # the promise: a killed worker's job is retried or failed within 2 minutes


def test_sigkill_during_backup_on_defaults_is_rescued_within_two_minutes(
    start_worker, redis_url, redis_conn, database_url, slow_s3, monkeypatch
) -> None:
    """Default settings, nothing shortened: the worker, its work horse and pg_dump are SIGKILLed
    mid-upload, and the replacement worker hands the backup to its retry within 2 minutes of the
    kill. The retry then waits the registry's 5-minute backoff, which the test skips by making the
    scheduled retry due at once; the rest is the same as for any killed backup."""
    proxy, s3 = slow_s3
    first, env, job_id, key = backup_under_way(start_worker, redis_url, database_url, s3, defaults=True)
    time.sleep(1.5)  # mid-upload
    kill_everything(first.popen)
    killed_at = time.monotonic()
    second = start_worker(env)
    job = wait_status(redis_conn, job_id, {JobStatus.SCHEDULED, JobStatus.FAILED}, timeout_s=RESCUE_DEADLINE_S + 15)
    rescued_after_s = time.monotonic() - killed_at
    assert JobStatus.SCHEDULED == job.get_status()
    assert rescued_after_s < RESCUE_DEADLINE_S, f"rescued {rescued_after_s:.0f}s after the kill"
    retry_at = ScheduledJobRegistry("backup", connection=redis_conn).get_scheduled_time(job)
    assert 240 < (retry_at - datetime.now(UTC)).total_seconds() <= 300  # the backup's first backoff, 5 minutes
    ScheduledJobRegistry("backup", connection=redis_conn).schedule(job, datetime.now(UTC))
    assert_killed_backup_is_redone(lambda: second, env, redis_conn, job_id, key, proxy, s3, monkeypatch)


def test_sigterm_with_too_short_a_draining_window_ends_as_a_kill(
    start_worker, redis_url, redis_conn, database_url, slow_s3, monkeypatch
) -> None:
    """A deploy whose drainingSeconds is shorter than the backup: SIGTERM, then SIGKILL before it ends."""
    proxy, s3 = slow_s3
    first, env, job_id, key = backup_under_way(start_worker, redis_url, database_url, s3)
    first.popen.send_signal(signal.SIGTERM)
    first.wait_for(lambda line: "warm shut down requested" in str(line.get("event", "")))
    time.sleep(1.0)  # the draining window, shorter than the upload
    assert first.popen.poll() is None, "the worker should still be draining"
    kill_everything(first.popen)
    assert not [line for line in first.lines() if line.get("event") == "backup_completed"]
    assert_killed_backup_is_redone(
        lambda: start_worker(env, FAST_CLEANUP_ARGS), env, redis_conn, job_id, key, proxy, s3, monkeypatch
    )


def assert_killed_backup_is_redone(start_second, env, redis_conn, job_id, killed_key, proxy, s3, monkeypatch) -> None:
    """No manifest for the killed attempt; a second worker (``start_second()``) retries the job to a
    complete backup; the killed attempt's multipart upload is left incomplete, and cleanup aborts it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    store, location = store_for(s3)
    assert store.head(killed_key + MANIFEST_SUFFIX) is None
    assert [killed_key] == [u.key for u in store.list_incomplete_uploads(location.key())]

    second = start_second()
    job = wait_status(redis_conn, job_id, {JobStatus.FINISHED, JobStatus.FAILED})
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
    retried = second.wait_for(lambda line: line.get("event") == "job_failed" and line.get("job_id") == job_id)
    assert (True, "AbandonedJobError") == (retried["will_retry"], retried["error_type"])
    [backup] = list_backups(store, location)
    assert backup.key != killed_key
    assert {"public.blobs": ROWS} == backup.row_counts
    assert [] == StartedJobRegistry("backup", connection=redis_conn).get_job_ids(cleanup=False)

    leftover = list(store.list_incomplete_uploads(location.key()))
    assert [killed_key] == [u.key for u in leftover]
    aborted = store.abort_stale_uploads(location.key(), timedelta(0), datetime.now(UTC) + timedelta(seconds=1))
    assert [killed_key] == [u.key for u in aborted]
    assert [] == list(store.list_incomplete_uploads(location.key()))


def test_sigterm_during_backup_lets_it_complete(start_worker, redis_url, redis_conn, database_url, slow_s3) -> None:
    """A deploy with a long enough draining window: warm shutdown, the backup completes, exit 0."""
    _, s3 = slow_s3
    seed_incompressible(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, **s3}
    worker = start_worker(env)
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    worker.wait_for(lambda line: line.get("event") == "backup_started", timeout_s=60)
    time.sleep(1.0)
    worker.popen.send_signal(signal.SIGTERM)
    assert 0 == worker.popen.wait(timeout=90)
    job = Job.fetch(job_id, connection=redis_conn)
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
    completed = [line for line in worker.lines() if line.get("event") == "backup_completed"]
    assert [job.return_value()["id"]] == [line["id"] for line in completed]


def test_s3_outage_fails_cleanly_then_the_next_attempt_succeeds(
    start_worker, redis_url, redis_conn, database_url, s3_endpoint, s3_env, bucket, monkeypatch
) -> None:
    """S3 stops answering mid-upload: the attempt fails with a clear retryable error and no manifest;
    once S3 is back, the retry completes the backup."""
    seed_incompressible(database_url)
    with FaultProxy(s3_endpoint, slow_parts) as proxy:
        s3 = {
            **s3_env,
            "AWS_ENDPOINT_URL_S3": proxy.url,
            "AWS_MAX_ATTEMPTS": "2",
            "BACKUP_STORAGE_URL": f"s3://{bucket}/db",
            "BACKUP_PART_SIZE_MB": "8",
            "BACKUP_UPLOAD_CONCURRENCY": "1",
        }
        env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, **s3, "RAILYARD_RETRY_BACKOFF_SCALE": "0.03"}
        worker = start_worker(env)
        job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
        worker.wait_for(lambda line: line.get("event") == "backup_started", timeout_s=60)
        time.sleep(3.0)  # the first parts are on their way
        proxy.unreachable = True  # S3 goes away mid-upload
        failed = worker.wait_for(lambda line: line.get("event") == "job_failed", timeout_s=90)
        assert (True, 1) == (failed["will_retry"], failed["attempt"]), failed
        assert ("StorageError", "S3 request") == (failed["error_type"], failed["error"][:10]), failed
        proxy.unreachable = False  # back before the retry (9 s backoff at this scale)
        job = wait_status(redis_conn, job_id, {JobStatus.FINISHED, JobStatus.FAILED}, timeout_s=120)
        assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        store, location = store_for(s3)
        [backup] = list_backups(store, location)
        assert backup.id == job.return_value()["id"]
        manifests = [o.key for o in store.list(location.key()) if o.key.endswith(MANIFEST_SUFFIX)]
        assert [backup.key + MANIFEST_SUFFIX] == manifests
        # S3 was unreachable, so the failed attempt could not abort its upload: cleanup does it later.
        [leftover] = store.list_incomplete_uploads(location.key())
        assert leftover.key != backup.key
        aborted = store.abort_stale_uploads(location.key(), timedelta(0), datetime.now(UTC) + timedelta(days=5000))
        assert [leftover.key] == [u.key for u in aborted]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (root is required: a missing privilege fails the test)."""
    mount = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"could not mount a tmpfs for the disk-full test (run as root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_local_disk_fails_cleanly_and_lists_nothing(database_url, small_tmpfs) -> None:
    seed_incompressible(database_url)
    env = {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(small_tmpfs)}
    result = run_cli("backup", env=env)
    assert 1 == result.returncode
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "No space left on device" in line or "full" in line, line
    assert "Traceback" not in result.stderr
    listed = run_cli("backups", "list", "--json", env=env)
    assert (0, []) == (listed.returncode, __import__("json").loads(listed.stdout))
    leftovers = [p for p in small_tmpfs.rglob("*") if p.is_file()]
    assert [] == leftovers, leftovers
    assert os.statvfs(small_tmpfs).f_bfree > 0  # the partial file was removed


@pytest.fixture
def private_pg() -> Iterator[tuple[str, Callable[[], None]]]:
    """A PostgreSQL cluster of this test's own (trust auth), and a function that restarts it."""
    import pwd
    import shutil
    import tempfile

    from tests.conftest import _pg_bin, free_port

    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="railyard-pg-"))  # the postgres user must reach it
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w"]
    subprocess.run([*pg_ctl, "start"], check=True, capture_output=True)

    def restart() -> None:
        subprocess.run([*pg_ctl, "-m", "fast", "restart"], check=True, capture_output=True)

    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", restart
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_during_backup_fails_cleanly_and_the_retry_succeeds(
    start_worker, redis_url, redis_conn, private_pg, slow_s3, monkeypatch
) -> None:
    proxy, s3 = slow_s3
    url, restart = private_pg
    seed_incompressible(url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": url, **s3, "RAILYARD_RETRY_BACKOFF_SCALE": "0.01"}
    worker = start_worker(env)
    job_id = enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    started = worker.wait_for(lambda line: line.get("event") == "backup_started", timeout_s=60)
    time.sleep(1.5)
    restart()
    failed = worker.wait_for(lambda line: line.get("event") == "job_failed", timeout_s=60)
    assert (True, 1) == (failed["will_retry"], failed["attempt"]), failed
    assert "\n" not in failed["error"] and "Traceback" not in failed["error"]
    job = wait_status(redis_conn, job_id, {JobStatus.FINISHED, JobStatus.FAILED}, timeout_s=120)
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    store, location = store_for(s3)
    [backup] = list_backups(store, location)
    assert backup.key != started["key"]
    assert {"public.blobs": ROWS} == backup.row_counts
    assert store.head(started["key"] + MANIFEST_SUFFIX) is None
