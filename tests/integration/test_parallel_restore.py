"""Parallel restore (pg_restore --jobs from a spooled, verified archive) and its undo on failure."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import structlog.testing

from jobs.backup.dump import backup_database
from jobs.backup.parallel_restore import leftovers
from jobs.backup.restore import restore_backup
from jobs.backup.verify import verify_manifest
from railyard.core.errors import PermanentError
from railyard.core.pgtools import PgTarget
from railyard.core.storage import open_store
from tests.integration.test_backup import SCHEMA_SQL, _tamper_manifest, schema_dump, settings_for, table_digests

pytestmark = pytest.mark.timeout(180)

# An index whose function reads a table by an unqualified name: it builds in the source, but
# pg_restore runs with an empty search_path, so the index fails after every table was loaded.
FAILS_LATE_SQL = """
CREATE TABLE public.lookup (n int);
INSERT INTO public.lookup VALUES (1);
CREATE FUNCTION public.plus_lookup(int) RETURNS int LANGUAGE sql IMMUTABLE
  AS 'SELECT $1 + (SELECT count(*)::int FROM lookup)';
CREATE TABLE public.indexed (a int);
INSERT INTO public.indexed SELECT generate_series(1, 1000);
CREATE INDEX indexed_plus ON public.indexed (public.plus_lookup(a));
"""


@pytest.fixture(autouse=True)
def parallel_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_PARALLEL_MIN_MB", "0")


def _catalog(url: str) -> list[tuple[object, ...]]:
    """Everything a restore could leave: namespaces, relations, functions, types, large objects."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT 'n', nspname::text FROM pg_namespace UNION ALL "
            "SELECT 'c', relnamespace::regnamespace::text || '.' || relname FROM pg_class UNION ALL "
            "SELECT 'p', pronamespace::regnamespace::text || '.' || proname FROM pg_proc UNION ALL "
            "SELECT 't', typnamespace::regnamespace::text || '.' || typname FROM pg_type UNION ALL "
            "SELECT 'l', oid::text FROM pg_largeobject_metadata ORDER BY 1, 2"
        ).fetchall()


def _started(logs: list[dict[str, object]]) -> dict[str, object]:
    [started] = [e for e in logs if e["event"] == "restore_started"]
    return started


def test_parallel_round_trip(database_url: str, new_database: str, tmp_path: Path) -> None:
    """Two jobs restore the varied schema, with a large object, exactly."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute("SELECT lo_from_bytea(0, %s)", (b"large\nobject",))
    settings = settings_for(database_url, str(tmp_path / "store"))
    manifest = backup_database(settings)
    with structlog.testing.capture_logs() as logs:
        restore_backup(settings, manifest.id, new_database, jobs=2)
    assert 2 == _started(logs)["jobs"]
    assert schema_dump(database_url) == schema_dump(new_database)
    assert table_digests(database_url) == table_digests(new_database)
    with psycopg.connect(new_database) as conn:
        assert [(b"large\nobject",)] == conn.execute("SELECT lo_get(oid) FROM pg_largeobject_metadata").fetchall()


def test_failed_parallel_restore_leaves_the_target_as_it_was(
    database_url: str, new_database: str, tmp_path: Path
) -> None:
    """pg_restore fails after loading every table: all it created is dropped, the target is as found."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute(FAILS_LATE_SQL)
        conn.execute("SELECT lo_from_bytea(0, 'x')")
    settings = settings_for(database_url, str(tmp_path / "store"))
    manifest = backup_database(settings)
    before = _catalog(new_database)
    with structlog.testing.capture_logs() as logs, pytest.raises(PermanentError) as info:
        restore_backup(settings, manifest.id, new_database, jobs=2)
    message = str(info.value)
    assert 'relation "lookup" does not exist' in message
    assert "what it created was dropped, the target is as it was" in message
    assert 2 == _started(logs)["jobs"]
    [undone] = [e for e in logs if e["event"] == "restore_undone"]
    assert int(str(undone["dropped"])) > 10  # the tables really had been created, then dropped
    assert before == _catalog(new_database)


def test_checksum_mismatch_never_reaches_the_target(
    database_url: str, new_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive is checked whole before pg_restore starts; the spool file is gone afterwards."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    storage_url = str(tmp_path / "store")
    settings = settings_for(database_url, storage_url)
    manifest = backup_database(settings)
    _tamper_manifest(storage_url, manifest, sha256="0" * 64)
    before = _catalog(new_database)
    with pytest.raises(PermanentError, match="failed its checksum"):
        restore_backup(settings, manifest.id, new_database, jobs=2)
    assert before == _catalog(new_database)
    assert [] == list(spool_dir.iterdir())


def test_a_target_with_objects_is_restored_in_one_transaction(
    database_url: str, new_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    with psycopg.connect(new_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (x int)")
        assert "relation public.keep" in leftovers(conn)
    settings = settings_for(database_url, str(tmp_path / "store"))
    manifest = backup_database(settings)
    with structlog.testing.capture_logs() as logs:
        restore_backup(settings, manifest.id, new_database, jobs=2)
    assert (1, "the target holds objects already: replaced in one transaction") == (
        _started(logs)["jobs"],
        _started(logs)["plan"],
    )


def test_verify_restores_with_jobs_too(
    database_url: str, pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_JOBS", "2")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    storage_url = str(tmp_path / "store")
    manifest = backup_database(settings_for(database_url, storage_url))
    with structlog.testing.capture_logs() as logs:
        result = verify_manifest(open_store(storage_url), manifest, PgTarget(pg_admin_url))
    assert (True, 2) == (result.passed, _started(logs)["jobs"])


class _JobTimeout(Exception):
    """What rq's SIGALRM death penalty raises in the job's thread."""


def test_a_job_timeout_mid_restore_leaves_the_target_as_it_was(
    database_url: str, new_database: str, tmp_path: Path
) -> None:
    """The job's timeout fires while pg_restore --jobs loads data: its workers end, what it created is dropped."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute("CREATE TABLE public.big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 200000) g")
    settings = settings_for(database_url, str(tmp_path / "store"))
    manifest = backup_database(settings)
    before = _catalog(new_database)

    def fire_when_loading() -> None:
        with psycopg.connect(new_database, autocommit=True) as conn:
            while not conn.execute("SELECT 1 FROM pg_class WHERE relname = 'big'").fetchone():
                time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGALRM)

    def timeout(signum: int, frame: object) -> None:
        raise _JobTimeout

    previous = signal.signal(signal.SIGALRM, timeout)
    watcher = threading.Thread(target=fire_when_loading, daemon=True)
    try:
        watcher.start()
        with pytest.raises(_JobTimeout):
            restore_backup(settings, manifest.id, new_database, jobs=2)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert before == _catalog(new_database)
    with psycopg.connect(new_database) as conn:
        assert (
            []
            == conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )
