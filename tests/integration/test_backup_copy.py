"""The second destination: a real backup on moto copied to rclone's S3 server with its own credentials."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from click.testing import CliRunner
from rq import Queue

from jobs.backup.catalog import read_catalog
from jobs.backup.copy import COPY_JOB, copy_backup
from jobs.backup.copy_config import CopyConfig
from jobs.backup.dump import backup_database
from jobs.backup.restore import restore_backup
from jobs.backup.staleness import check_stale_backups
from jobs.backup.verify import verify_backups
from jobs.retention import prune_backups
from railyard.cli import cli
from railyard.core.alert_config import AlertConfig
from railyard.core.errors import PermanentError
from railyard.core.serializer import rq_serializer
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from railyard.core.storage.access import S3Access
from railyard.core.storage.s3 import make_client
from railyard.ops import status
from tests.conftest import RCLONE_TEST_ENV
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def copy_url(rclone_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket on rclone's S3 server, reached only through the BACKUP_COPY_AWS_* variables."""
    env = {
        "BACKUP_COPY_AWS_ACCESS_KEY_ID": RCLONE_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "BACKUP_COPY_AWS_SECRET_ACCESS_KEY": RCLONE_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        "BACKUP_COPY_AWS_REGION": "us-east-1",
        "BACKUP_COPY_AWS_ENDPOINT_URL_S3": rclone_endpoint,
    }
    name = f"ry-copy-{uuid.uuid4().hex[:12]}"
    make_client(
        "path",
        S3Access(
            env["BACKUP_COPY_AWS_ACCESS_KEY_ID"], env["BACKUP_COPY_AWS_SECRET_ACCESS_KEY"], "us-east-1", rclone_endpoint
        ),
    ).create_bucket(Bucket=name)
    for key, value in {**env, "BACKUP_COPY_STORAGE_URL": f"s3://{name}/offsite"}.items():
        monkeypatch.setenv(key, value)
    return f"s3://{name}/offsite"


@pytest.fixture
def primary(database_url: str, bucket: str, redis_url: str, copy_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with the primary on moto (boto3's AWS_* variables) and the copy configured."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT i, md5(i::text) AS v FROM generate_series(1, 2000) AS i")
    env = {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": f"s3://{bucket}/pg", "REDIS_URL": redis_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env()


def _copy_store(copy_url: str):  # type: ignore[no-untyped-def]
    config = CopyConfig.from_env()
    assert config is not None and copy_url == config.storage_url
    return open_store(config.location, addressing_style="path", access=config.access)


def test_a_backup_is_copied_after_its_manifest_commits(primary: Settings, copy_url: str) -> None:
    """The backup enqueues its copy; the copy job verifies it and writes the copy's own manifest."""
    manifest = backup_database(primary)
    queue = Queue("backup", connection=redis.Redis.from_url(primary.redis_url), serializer=rq_serializer("pickle"))
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    assert [(COPY_JOB, {"key": manifest.key})] == [(j.func_name, j.kwargs) for j in jobs if j is not None]

    result = copy_backup(manifest.key)

    store, location = _copy_store(copy_url), StorageLocation.parse(copy_url)
    catalog = read_catalog(store, location)
    assert [] == catalog.problems
    assert [(manifest.id, manifest.sha256, manifest.size)] == [(m.id, m.sha256, m.size) for m in catalog.backups]
    copied = catalog.backups[0]
    assert copied.key == result["key"] == "offsite/" + manifest.key.removeprefix("pg/")
    assert {**manifest.__dict__, "key": copied.key} == copied.__dict__
    assert True is copy_backup(manifest.key)["already_copied"]  # a retry after success changes nothing


def test_a_corrupted_source_is_refused_and_no_copy_manifest_is_written(primary: Settings, copy_url: str) -> None:
    manifest = backup_database(primary)
    bucket = StorageLocation.parse(primary.backup_storage_url).container
    original = open_store(primary.backup_storage_url, addressing_style="path").get_bytes(manifest.key)
    corrupted = bytes([original[0] ^ 0xFF]) + original[1:]  # same size: only the checksum can tell
    make_client("path").put_object(Bucket=bucket, Key=manifest.key, Body=corrupted)

    with pytest.raises(PermanentError, match=r"does not match backup .*manifest.*no copy manifest was written"):
        copy_backup(manifest.key)

    store = _copy_store(copy_url)
    assert [] == [o.key for o in store.list("offsite/")]


def _list_where(settings: Settings) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["backups", "list", "--json"], env={"LOG_FORMAT": "console"})
    assert 0 == result.exit_code, result.output
    return {entry["id"]: entry["where"] for entry in json.loads(result.stdout)}


def _restore_and_verify(settings: Settings, database_url: str, target: str) -> tuple[str, str, bool]:
    restored = restore_backup(settings, "latest", target)
    with psycopg.connect(target) as conn:
        assert (2000,) == conn.execute("SELECT count(*) FROM t").fetchone()
    [verified] = verify_backups(settings, "latest")
    return restored.source, verified.source, verified.passed


def test_restore_drill_lost_primary_objects(
    primary: Settings, copy_url: str, database_url: str, new_database: str
) -> None:
    """Every object of the series deleted from the primary: restore latest and verify read the copy."""
    manifest = backup_database(primary)
    copy_backup(manifest.key)
    assert {manifest.id: "both"} == _list_where(primary)
    store = open_store(primary.backup_storage_url, addressing_style="path")
    series_prefix = manifest.key.rsplit("/", 4)[0] + "/"
    for info in list(store.list(series_prefix)):
        store.delete(info.key)
    assert [] == list(store.list(series_prefix))

    assert {manifest.id: "copy"} == _list_where(primary)
    assert ("copy", "copy", True) == _restore_and_verify(primary, database_url, new_database)
    result = CliRunner().invoke(cli, ["restore", "latest", "--target-url", new_database], env={"LOG_FORMAT": "console"})
    assert 0 == result.exit_code, result.output
    assert f"restored {manifest.id} from the copy" in result.stdout


def test_restore_drill_corrupted_primary_dump(
    primary: Settings,
    copy_url: str,
    database_url: str,
    new_database: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The primary's dump corrupted (same size): restore and verify fall back to the copy, and say so."""
    manifest = backup_database(primary)
    copy_backup(manifest.key)
    bucket = StorageLocation.parse(primary.backup_storage_url).container
    original = open_store(primary.backup_storage_url, addressing_style="path").get_bytes(manifest.key)
    make_client("path").put_object(Bucket=bucket, Key=manifest.key, Body=original[:-1] + bytes([original[-1] ^ 1]))

    assert ("copy", "copy", True) == _restore_and_verify(primary, database_url, new_database)
    logged = caplog.text + capsys.readouterr().out  # stdlib logging once a CLI run configured it, else stdout
    for event in ("restore_source_failed", "restore_from_copy", "verify_source_failed", "verify_from_copy"):
        assert event in logged


def test_each_destination_is_pruned_with_its_own_policy(
    primary: Settings, copy_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BACKUP_KEEP_LAST=2 at the primary, BACKUP_COPY_KEEP_LAST=1 at the copy (the other rules inherited as 0)."""
    for rule in ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        monkeypatch.setenv(f"BACKUP_KEEP_{rule}", "0")
    monkeypatch.setenv("BACKUP_KEEP_LAST", "2")
    monkeypatch.setenv("BACKUP_MIN_KEEP", "1")
    monkeypatch.setenv("BACKUP_COPY_KEEP_LAST", "1")
    older, newer = backup_database(primary), backup_database(primary)
    for manifest in (older, newer):
        copy_backup(manifest.key)

    result = prune_backups()

    assert [newer.id, older.id] == [b["id"] for b in result["keep"]] and [] == result["delete"]
    assert [newer.id] == [b["id"] for b in result["copy"]["keep"]]
    assert [older.id] == [b["id"] for b in result["copy"]["delete"]]
    assert {older.id: "primary", newer.id: "both"} == _list_where(primary)


def test_a_copy_that_stopped_arriving_alerts_like_a_stale_backup(primary: Settings, copy_url: str) -> None:
    """A fresh primary backup without its copy: the copy is stale (alerted once); once copied, it is not."""
    manifest = backup_database(primary)
    conn = redis.Redis.from_url(primary.redis_url)
    series = manifest.series_name
    with webhook_server() as hook:
        config = AlertConfig(webhook_url=hook.url)
        first = check_stale_backups(settings=primary, config=config, connection=conn)
        again = check_stale_backups(settings=primary, config=config, connection=conn)
        copy_backup(manifest.key)
        copied = check_stale_backups(settings=primary, config=config, connection=conn)
    assert ([], [series], [series]) == (first["stale"], first["copy_stale"], first["copy_alerted"])
    assert ([series], []) == (again["copy_stale"], again["copy_alerted"])
    assert ([], []) == (copied["stale"], copied["copy_stale"])
    payloads = [json.loads(r.body) for r in hook.received]
    assert [("backup_copy_stale", f"[railyard development] database {series} has no backup at the copy at all")] == [
        (p["event"], p["text"]) for p in payloads
    ]


def test_status_reports_a_missing_copy_as_a_problem(primary: Settings, copy_url: str) -> None:
    manifest = backup_database(primary)
    series = manifest.series_name
    before = status.collect(primary, AlertConfig(), datetime.now(UTC))
    copy_backup(manifest.key)
    after = status.collect(primary, AlertConfig(), datetime.now(UTC))
    assert f"database {series} has no backup at the copy at all" in before.problems()
    assert [] == [p for p in after.problems() if "copy" in p]
    assert [(series, manifest.id, False)] == [(c["database"], c["id"], c["stale"]) for c in after.as_dict()["copies"]]
