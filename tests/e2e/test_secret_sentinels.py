"""A sentinel in every configured secret never appears in any output of the CLI or of a job.

Every secret the redaction layer knows is set at once, each to its own sentinel: the
database passwords (DATABASE_URL, RESTORE_TARGET_URL as a key=value string,
VERIFY_DATABASE_URL, a BACKUP_DATABASE_URLS entry with a wrong one), the Redis password,
PGPASSWORD, the AWS secret and session token, credentials in the S3 endpoint URL, the age
identity, and the tokens of the webhook and ping URLs. Then every CLI command runs, on
success and error paths, and the worker runs a good job and failing ones, with alerts and
pings. No spelling of any sentinel (as written, percent-encoded, JSON-escaped) may appear in
any command's stdout or stderr, the worker's log, any value in Redis, any stored manifest,
any webhook payload or any process's argv.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis
from pyrage import x25519
from rq import Queue
from rq.job import JobStatus

from tests.conftest import PG_PASSWORD, SENTINEL_PASSWORD, url_with_db
from tests.e2e.conftest import run_cli
from tests.e2e.test_backup_e2e import ArgvWatcher, all_redis_values, seed, wait_finished
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(300)

WRONG_PG = "Sentinel-wrong-pg #/?%@ 2"
SENTINELS = {
    "pg": PG_PASSWORD,
    "redis": SENTINEL_PASSWORD,
    "wrong_pg": WRONG_PG,
    "pgpassword": "Sentinel-pgpassword-env-3",
    "aws": "Sentinel-aws-secret+/=4",
    "aws_token": "Sentinel-aws-session-token-5",
    "endpoint_user": "Sentinel-endpoint-user-6",
    "endpoint_pw": "Sentinel-endpoint-pw-7",
    "webhook": "SentinelWebhookToken08x9y",
    "ping": "Sentinel-ping-0c1d2e3f-4a5b",
}


def spellings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}


def leaks(haystacks: list[str], secrets: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (name, haystack[max(0, haystack.find(form) - 80) : haystack.find(form) + 80])
        for name, secret in secrets.items()
        for form in spellings(secret)
        for haystack in haystacks
        if form in haystack
    ]


def test_no_secret_leaks_from_any_command_or_job(
    start_worker, pg_password_url: str, redis_password_url: str, tmp_path: Path
) -> None:
    app = url_with_db(pg_password_url, "ry_sentinel_app")
    with psycopg.connect(pg_password_url, autocommit=True) as conn:
        for name in ("ry_sentinel_app", "ry_sentinel_copy"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    seed(app)
    port = psycopg.conninfo.conninfo_to_dict(pg_password_url)["port"]
    escaped = PG_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    wrong = f"postgresql://postgres:{quote(WRONG_PG, safe='')}@127.0.0.1:{port}/x"
    identity = x25519.Identity.generate()
    secrets = {**SENTINELS, "age": str(identity)}
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_t.sql").write_text("CREATE TABLE t (id int);")
    with webhook_server() as hook, ArgvWatcher() as watcher:
        env = {
            "DATABASE_URL": app,
            "REDIS_URL": redis_password_url,
            "RESTORE_TARGET_URL": f"host=127.0.0.1 port={port} user=postgres dbname=ry_sentinel_copy "
            f"password='{escaped}'",
            "VERIFY_DATABASE_URL": pg_password_url,
            "BACKUP_DATABASE_URLS": f"app={app} broken={wrong}",
            "PGPASSWORD": SENTINELS["pgpassword"],
            "AWS_SECRET_ACCESS_KEY": SENTINELS["aws"],
            "AWS_SESSION_TOKEN": SENTINELS["aws_token"],
            "AWS_ENDPOINT_URL_S3": f"https://{SENTINELS['endpoint_user']}:{SENTINELS['endpoint_pw']}@s3.invalid",
            "BACKUP_STORAGE_URL": str(tmp_path / "store"),
            "BACKUP_ENCRYPTION_RECIPIENTS": str(identity.to_public()),
            "BACKUP_ENCRYPTION_IDENTITY": str(identity),
            "ALERT_WEBHOOK_URL": f"{hook.url}/hooks/{SENTINELS['webhook']}",
            "HEALTHCHECK_PING_URL": f"{hook.url}/ping/{SENTINELS['ping']}",
            "MIGRATIONS_DIR": str(migrations),
        }
        outputs: list[str] = []
        commands = [
            ("health",),
            ("backup", "--database", "app"),
            ("backup", "--database", "broken"),  # wrong password: an error path
            ("backups", "list", "--json"),
            ("verify", "--database", "app"),
            ("restore", "latest", "--yes", "--database", "app"),
            ("restore", "nosuch-20260101T000000Z", "--yes"),
            ("migrate", "status"),
            ("status",),
            ("prune", "--dry-run"),
        ]
        for args in commands:
            result = run_cli(*args, env=env)
            outputs.append(result.stdout + result.stderr)
        broken = {  # start-up validation reports each, in one error
            "DATABASE_URL": f"postgresql://postgres:{quote(WRONG_PG, safe='')}@127.0.0.1:99999/x",
            "RESTORE_TARGET_URL": f"postgresql://postgres:{WRONG_PG}@127.0.0.1/x",  # unencoded: libpq refuses it
            "AWS_ENDPOINT_URL_S3": f"ftp://{SENTINELS['endpoint_user']}:{SENTINELS['endpoint_pw']}@x",
        }
        result = run_cli("backups", "list", env={**env, **broken})
        assert (2, True) == (result.returncode, "(3 problems)" in result.stderr), result.stderr
        outputs.append(result.stdout + result.stderr)

        worker = start_worker(env)
        conn = redis.Redis.from_url(redis_password_url)
        queue = Queue("backup", connection=conn)
        jobs = [
            queue.enqueue("jobs.backup.run_backup", kwargs={"database": "app"}),
            queue.enqueue("jobs.backup.run_backup", kwargs={"database": "broken"}),
            queue.enqueue("jobs.verify.verify_backup", kwargs={"backup_id": "nosuch-20260101T000000Z"}),
            queue.enqueue("jobs.diagnostics.ping", kwargs={"delay_s": "soon"}),  # refused
        ]
        statuses = [wait_finished(conn, job.id, timeout_s=120).get_status() for job in jobs]
        assert [JobStatus.FINISHED, JobStatus.FAILED, JobStatus.FAILED, JobStatus.FAILED] == statuses
        hook.wait_for(4)  # pings of the good backup, and the failed jobs' alerts
        stored = all_redis_values(conn).decode(errors="replace")
        conn.flushdb()
        conn.close()
    manifests = [p.read_text() for p in (tmp_path / "store").rglob("*.json")]
    assert outputs[1].strip() and "ry_sentinel_app" in outputs[3], outputs[:4]
    assert outputs[5].startswith("restored "), outputs[5]
    bodies = [r.body.decode(errors="replace") for r in hook.received]
    argv = [a.decode(errors="replace") for a in watcher.seen]
    haystacks = [*outputs, worker.text(), stored, *manifests, *bodies, *argv]
    assert [] == leaks(haystacks, secrets)
