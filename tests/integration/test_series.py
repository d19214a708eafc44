"""Series named by source: two servers whose databases share a name never share keys, listings or `latest`.

The second server is a private PostgreSQL cluster the tests start; the storage is moto and
rclone's S3 server in turn.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import zstandard
from psycopg import sql

from jobs.backup.catalog import AmbiguousLatestError, backup_key, choose_latest, read_catalog
from jobs.backup.dump import backup_database
from jobs.backup.restore import restore_backup
from jobs.backup.series import BACKUP_LOCK_KEY, resolve_source
from jobs.retention import run_prune
from jobs.retention.policy import RetentionPolicy
from jobs.retention.prune import prune
from railyard.core.errors import LockBusyError
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from railyard.core.storage.s3 import make_client
from tests.conftest import url_with_db
from tests.unit.test_manifest_validation import ENV, manifest_for, put
from tests.webhook_server import webhook_server

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def twin_databases(pg_admin_url: str, pg_second_url: str) -> Iterator[tuple[str, str]]:
    """A database of the same name on both servers, each saying which server it is on."""
    name = f"ry_twin_{uuid.uuid4().hex[:8]}"
    urls = []
    for server, label in ((pg_admin_url, "origin-main"), (pg_second_url, "origin-second")):
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = url_with_db(server, name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE origin (server text)")
            conn.execute("INSERT INTO origin VALUES (%s)", (label,))
        urls.append(url)
    yield urls[0], urls[1]
    for server in (pg_admin_url, pg_second_url):
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def origin(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT server FROM origin").fetchone()
    assert row is not None
    return str(row[0])


def test_ten_concurrent_backups_of_two_same_named_sources_in_one_second(
    twin_databases: tuple[str, str], any_bucket: str, new_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 backups in the same second, 5 per source, all at once: 10 distinct backups, each its own source's data."""
    main_url, second_url = twin_databases
    monkeypatch.setenv("BACKUP_DATABASE_URLS", f"app={main_url} analytics={second_url}")
    storage_url = f"s3://{any_bucket}/pg"
    settings = Settings.from_env({"DATABASE_URL": main_url, "BACKUP_STORAGE_URL": storage_url})
    second = datetime.now(UTC).replace(microsecond=0)
    reported: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def one_backup(source_name: str) -> None:
        start.wait()
        try:
            while True:  # a second backup of the same database waits for the first, as a retried job would
                try:
                    manifest = backup_database(
                        settings, source=resolve_source(settings, source_name), clock=lambda: second
                    )
                    reported.append((manifest.series_name, manifest.id))
                    return
                except LockBusyError:
                    time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_backup, args=(name,)) for name in ["app", "analytics"] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [] == errors
    location = StorageLocation.parse(storage_url)
    catalog = read_catalog(open_store(location, addressing_style="path"), location, environment=settings.environment)
    assert 10 == len({backup_id for _, backup_id in reported})
    assert sorted(reported) == sorted((m.series_name, m.id) for m in catalog.backups)
    assert {"app": 5, "analytics": 5} == {name: len(b) for name, b in catalog.by_series().items()}
    assert [] == catalog.problems
    store = open_store(location, addressing_style="path")
    for manifest in catalog.backups:  # each dump holds its own source's rows (-Z0: COPY data in clear)
        data = zstandard.ZstdDecompressor().decompressobj().decompress(store.get_bytes(manifest.key))
        label = {"app": b"origin-main", "analytics": b"origin-second"}[manifest.series_name]
        other = {"app": b"origin-second", "analytics": b"origin-main"}[manifest.series_name]
        digest = hashlib.sha256(store.get_bytes(manifest.key)).hexdigest()
        assert (manifest.sha256, True, False) == (digest, label in data, other in data)
    restore_backup(settings, catalog.by_series()["app"][-1].id, new_database)
    assert "origin-main" == origin(new_database)
    # DATABASE_URL's own series has no backups and there are two others: `latest` asks instead of guessing.
    with pytest.raises(AmbiguousLatestError, match=r"\(analytics, app\); pass --database"):
        restore_backup(settings, "latest", new_database)
    restore_backup(settings, "latest", new_database, database="analytics")
    assert "origin-second" == origin(new_database)


def test_a_series_whose_server_changes_is_alerted_once(
    twin_databases: tuple[str, str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATABASE_URL now points at another server with a database of the same name: backups go on, one alert."""
    main_url, second_url = twin_databases
    storage_url = str(tmp_path / "store")
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        first = backup_database(Settings.from_env({"DATABASE_URL": main_url, "BACKUP_STORAGE_URL": storage_url}))
        moved = Settings.from_env({"DATABASE_URL": second_url, "BACKUP_STORAGE_URL": storage_url})
        later = [backup_database(moved) for _ in range(2)]
        time.sleep(0.2)
        events = [r.json() for r in hook.received]
    assert first.system_identifier and later[0].system_identifier
    assert first.system_identifier != later[0].system_identifier
    assert first.series_name == later[0].series_name == later[1].series_name
    assert ["series_server_changed"] == [e["event"] for e in events]
    assert (first.id, later[0].id) == (events[0]["details"]["previous_id"], events[0]["details"]["id"])
    assert ("DATABASE_URL", first.series_name) == (later[0].source, json.loads(later[0].to_json())["series"])


def test_prune_never_aborts_the_upload_of_a_running_backup(
    twin_databases: tuple[str, str], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old-looking upload (key two days old, moto's Initiated in 2010) stays while its series' lock is held."""
    main_url, second_url = twin_databases
    monkeypatch.setenv("BACKUP_DATABASE_URLS", f"app={main_url} analytics={second_url}")
    storage_url = f"s3://{bucket}/pg"
    settings = Settings.from_env({"DATABASE_URL": main_url, "BACKUP_STORAGE_URL": storage_url})
    location = StorageLocation.parse(storage_url)
    now = datetime.now(UTC)
    keys = {
        name: backup_key(location, settings.environment, name, now - timedelta(days=2)).key
        for name in ("app", "analytics")
    }
    for key in keys.values():
        make_client("path").create_multipart_upload(Bucket=bucket, Key=key)
    with psycopg.connect(second_url, autocommit=True) as running:  # a backup of `analytics` holds its lock
        running.execute("SELECT pg_advisory_lock(%s, %s)", BACKUP_LOCK_KEY)
        report = run_prune(settings, now=now)
        assert [keys["app"]] == [u.key for u in report.incomplete_uploads]
        assert [(keys["analytics"], "a backup of its series is running (its lock is held)")] == [
            (u.key, why) for u, why in report.uploads_left
        ]
    assert [keys["analytics"]] == [u.key for u in run_prune(settings, now=now).incomplete_uploads]


def test_prune_acts_only_on_what_is_where_it_claims_to_be(any_bucket: str) -> None:
    """The adversarial catalog of the issue, on moto and on rclone: a copied backup, a malformed manifest,
    two same-named servers with one backup each under last 1 — prune deletes only the one old real backup."""
    location = StorageLocation.parse(f"s3://{any_bucket}/pg")
    store = open_store(location, addressing_style="path")
    now = datetime.now(UTC).replace(microsecond=0)
    newest = manifest_for(location, "app", now - timedelta(hours=1))
    older = manifest_for(location, "app", now - timedelta(days=1))
    only_other = manifest_for(location, "analytics", now - timedelta(days=2))
    for manifest in (newest, older, only_other):
        put(store, manifest)
    copy_at = backup_key(location, ENV, "app", now - timedelta(days=3)).key  # an operator's copy of the newest
    put(store, newest, at=copy_at)
    broken = manifest_for(location, "app", now - timedelta(minutes=30))
    put(store, broken, body=json.dumps({**asdict(broken), "finished_at": "not a date", "size": "4"}).encode())
    policy = RetentionPolicy(last=1, hourly=0, daily=0, weekly=0, monthly=0, yearly=0)

    report = prune(store, location, environment=ENV, policy=policy, now=now)

    assert [older.id] == [d.backup.id for d in report.deleted]
    assert {newest.id, only_other.id} == {d.backup.id for d in report.kept}
    assert {("foreign", copy_at + ".manifest.json"), ("invalid", broken.key + ".manifest.json")} == {
        (p.kind, p.key) for p in report.problems
    }
    left = {o.key for o in store.list("")}
    assert {copy_at, copy_at + ".manifest.json", broken.key, broken.key + ".manifest.json", newest.key} <= left
    assert older.key not in left
    catalog = read_catalog(store, location, environment=ENV)
    assert newest.id == choose_latest(catalog, requested="app", default_series=None, now=now).id
