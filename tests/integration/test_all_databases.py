"""Whole-server backups and named databases."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from jobs.backup import run_backup
from jobs.backup.dump import backup_all_databases
from jobs.backup.restore import restore_backup
from railyard.core.databases import configured_databases, named_database_urls, resolve_target
from railyard.core.errors import ConfigError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from railyard.core.storage import open_store
from tests.conftest import url_with_db
from tests.integration.test_backup import table_digests

pytestmark = pytest.mark.timeout(180)
NAMES = ("ry_all_alpha", "ry_all_beta", "ry_all_gamma")


@pytest.fixture
def three_databases(pg_password_url):
    with psycopg.connect(pg_password_url, autocommit=True) as conn:
        for i, name in enumerate(NAMES):
            for db in (name, name + "_r"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            with psycopg.connect(url_with_db(pg_password_url, name), autocommit=True) as db_conn:
                db_conn.execute(
                    f"CREATE TABLE t{i} AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {100 * (i + 1)}) g"
                )
    yield pg_password_url
    with psycopg.connect(pg_password_url, autocommit=True) as conn:
        for name in NAMES:
            for db in (name, name + "_r"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def test_every_database_is_backed_up_and_restores_one_by_one(three_databases, tmp_path) -> None:
    server = three_databases
    settings = Settings.from_env({"DATABASE_URL": server, "BACKUP_STORAGE_URL": str(tmp_path / "store")})
    manifests, globals_key = backup_all_databases(settings, PgTarget(server))
    by_name = {m.database: m for m in manifests}
    assert set(NAMES) <= set(by_name)
    assert all(not name.endswith("_r") or name not in NAMES for name in by_name)
    assert "template0" not in by_name and "template1" not in by_name
    for i, name in enumerate(NAMES):
        assert {f"public.t{i}": 100 * (i + 1)} == by_name[name].row_counts
        restore_backup(settings, by_name[name].id, url_with_db(server, name + "_r"))
        assert table_digests(url_with_db(server, name)) == table_digests(url_with_db(server, name + "_r"))
    assert globals_key is not None
    assert b"CREATE ROLE postgres" in _decompressed(open_store(str(tmp_path / "store")).get_bytes(globals_key))


def _decompressed(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def test_globals_skipped_with_a_warning_when_not_permitted(database_url, tmp_path, pg_admin_url) -> None:
    """A role that may not read the globals still gets its databases backed up."""
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ry_limited")
        conn.execute("CREATE ROLE ry_limited LOGIN")
        conn.execute(
            sql.SQL("GRANT ALL ON DATABASE {} TO ry_limited").format(sql.Identifier(database_url.rsplit("/", 1)[1]))
        )
        conn.execute("REVOKE SELECT ON pg_catalog.pg_tablespace FROM PUBLIC")
    try:
        limited = database_url.replace("postgres@", "ry_limited@")
        settings = Settings.from_env({"DATABASE_URL": limited, "BACKUP_STORAGE_URL": str(tmp_path / "store")})
        from jobs.backup.config import BackupConfig
        from jobs.backup.dump import backup_globals
        from jobs.backup.encryption import EncryptionConfig

        assert None is backup_globals(settings, PgTarget(limited), tuning=BackupConfig(), encryption=EncryptionConfig())
        assert [] == list(open_store(str(tmp_path / "store")).list())
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON pg_catalog.pg_tablespace TO PUBLIC")
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM ry_limited").format(
                    sql.Identifier(database_url.rsplit("/", 1)[1])
                )
            )
            conn.execute("DROP ROLE IF EXISTS ry_limited")


def test_named_database_urls_back_up_by_name(database_url, tmp_path, monkeypatch) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE named (id int); INSERT INTO named VALUES (1), (2)")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/unused")
    monkeypatch.setenv("BACKUP_DATABASE_URLS", f"analytics={database_url}")
    monkeypatch.setenv("BACKUP_STORAGE_URL", str(tmp_path / "store"))
    result = run_backup(database="analytics")
    assert {"public.named": 2} == result["row_counts"]


def test_named_database_urls_parsing() -> None:
    env = {"BACKUP_DATABASE_URLS": "app=postgresql://u:pw@db/app,\n analytics=postgres://u@wh/an"}
    assert {"app": "postgresql://u:pw@db/app", "analytics": "postgres://u@wh/an"} == named_database_urls(env)
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u@main/core"})
    assert ["analytics", "app"] == configured_databases(settings, env)
    assert ["core"] == configured_databases(settings, {})
    other = resolve_target(settings, "other", env)
    assert ("other", "main:5432", "postgresql://u@main:5432/other") == (other.dbname, other.host, other.safe_url)
    with pytest.raises(ConfigError) as info:
        named_database_urls(
            {"BACKUP_DATABASE_URLS": "x=mysql://u:secret@h/d y app=postgresql://h/a app=postgresql://h/b"}
        )
    assert 3 == len(info.value.problems)
    assert "secret" not in str(info.value)
