"""Restore verification against real PostgreSQL: pass, fail with the table named, always clean up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from jobs.backup.catalog import VERIFIED_SUFFIX, Manifest
from jobs.backup.dump import backup_database
from jobs.backup.verify import SCRATCH_COMMENT, scratch_name, verify_backup, verify_backups, verify_server
from railyard.core.errors import ConfigError, PermanentError
from railyard.core.settings import Settings
from railyard.core.storage import open_store
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.timeout(120)


def scratch_databases(admin_url: str) -> list[str]:
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'railyard\\_verify\\_%'").fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def backed_up(database_url, tmp_path, monkeypatch):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric);"
            "INSERT INTO orders SELECT i, i FROM generate_series(1, 250) i;"
            "CREATE TABLE empty_one (id int)"
        )
    env = {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(env)
    return settings, backup_database(settings), env


def test_good_backup_passes_and_is_marked(backed_up, pg_admin_url) -> None:
    settings, manifest, env = backed_up
    before = scratch_databases(pg_admin_url)
    [result] = verify_backups(settings)
    assert ("passed", 2, []) == (result.result, result.tables_compared, result.mismatches)
    assert before == scratch_databases(pg_admin_url)
    marker = json.loads(open_store(settings.backup_storage_url).get_bytes(manifest.key + VERIFIED_SUFFIX))
    assert ("passed", manifest.id) == (marker["result"], marker["backup_id"])
    listed = json.loads(run_cli("backups", "list", "--json", env=env).stdout)
    assert "passed" == listed[0]["verification"]["result"]


def test_mismatch_names_the_table_and_cleans_up(backed_up, pg_admin_url) -> None:
    """A backup whose content and manifest disagree fails verification, naming the table."""
    settings, manifest, env = backed_up
    store = open_store(settings.backup_storage_url)
    lying = Manifest(**{**manifest.__dict__, "row_counts": {"public.orders": 251, "public.empty_one": 0}})
    store.put_bytes(manifest.key + ".manifest.json", lying.to_json())
    with pytest.raises(PermanentError, match=r"table public\.orders has 250 rows, the manifest says 251"):
        verify_backup()
    assert [] == [d for d in scratch_databases(pg_admin_url) if d == scratch_name(manifest.id)]
    marker = json.loads(store.get_bytes(manifest.key + VERIFIED_SUFFIX))
    assert [{"table": "public.orders", "expected": 251, "actual": 250}] == marker["mismatches"]
    cli = run_cli("verify", manifest.id, env=env)
    assert 1 == cli.returncode
    [error] = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
    assert "public.orders has 250 rows" in error


def test_checksum_failure_is_a_failed_verification(backed_up, pg_admin_url) -> None:
    settings, manifest, _ = backed_up
    store = open_store(settings.backup_storage_url)
    store.put_bytes(manifest.key + ".manifest.json", Manifest(**{**manifest.__dict__, "sha256": "f" * 64}).to_json())
    [result] = verify_backups(settings)
    assert "failed" == result.result and "checksum" in (result.error or "")
    assert scratch_name(manifest.id) not in scratch_databases(pg_admin_url)


def test_leftovers_older_than_a_day_are_dropped(backed_up, pg_admin_url) -> None:
    settings, _, _ = backed_up
    now = datetime.now(UTC)
    names = {"railyard_verify_stale_x": now - timedelta(days=2), "railyard_verify_running_x": now}
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name, started in names.items():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(SCRATCH_COMMENT + started.isoformat())
                )
            )
    try:
        verify_backups(settings)
        remaining = scratch_databases(pg_admin_url)
        assert "railyard_verify_stale_x" not in remaining
        assert "railyard_verify_running_x" in remaining
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize(
    ("backup_id", "expected"),
    [
        ("app-20261120T030000Z", "railyard_verify_app_20261120t030000z"),
        ("My%20DB-20261120T030000Z", "railyard_verify_my_20db_20261120t030000z"),
    ],
)
def test_scratch_names(backup_id: str, expected: str) -> None:
    assert expected == scratch_name(backup_id)
    assert len(scratch_name("x" * 100)) <= 63


def test_a_verify_server_url_that_is_not_postgresql_is_a_clear_error() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ConfigError, match="VERIFY_DATABASE_URL is not a PostgreSQL URL \\(scheme 'mysql'\\)") as info:
        verify_server(settings, {"VERIFY_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(info.value)
    assert "db.internal:5432" == verify_server(settings, {"VERIFY_DATABASE_URL": "postgres://u@db.internal/p"}).host
