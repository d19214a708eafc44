"""The production restore guard compares databases by identity, however their URLs are spelled.

Identity is (system_identifier from pg_control_system(), current_database()). Every way of
writing DATABASE_URL's own database is refused without --force-production; a different
database on the same server passes; an identity that cannot be read is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from jobs.backup.dump import backup_database
from jobs.backup.production_guard import check_restore_target
from jobs.backup.restore import restore_backup
from railyard.core.conninfo import Conninfo
from railyard.core.errors import PermanentError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from tests.conftest import free_port
from tests.tcpproxy import tcp_proxy

Spelling = Callable[[str, str, str], str]  # (host, port, dbname) -> a URL for that database

SPELLINGS: dict[str, Spelling] = {
    "hostname": lambda h, p, d: f"postgresql://postgres@{socket.gethostname()}:{p}/{d}",
    "localhost": lambda h, p, d: f"postgres://postgres@localhost:{p}/{d}",
    "dbname query parameter": lambda h, p, d: f"postgresql://postgres@{h}:{p}/postgres?dbname={d}",
    "port query parameter": lambda h, p, d: f"postgresql://postgres@{h}:1/{d}?port={p}",
    "host query parameter": lambda h, p, d: f"postgresql://postgres@unused.invalid:{p}/{d}?host={h}",
    "multi-host": lambda h, p, d: f"postgresql://postgres@{h}:{free_port()},{h}:{p}/{d}",
    "key=value": lambda h, p, d: f"host={h} port={p} user=postgres dbname='{d}'",
    "percent-encoded name": lambda h, p, d: f"postgresql://postgres@{h}:{p}/" + "".join(f"%{ord(c):02X}" for c in d),
}


def parts(url: str) -> tuple[str, str, str]:
    params = Conninfo.parse(url).params
    return params["host"], params["port"], params["dbname"]


def production(database_url: str, storage: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(storage), "ENVIRONMENT": "production", **env}
    )


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_of_the_production_database_is_refused(database_url: str, tmp_path: Path, spelling: str) -> None:
    target = SPELLINGS[spelling](*parts(database_url))
    with pytest.raises(PermanentError, match=r"refusing to restore into the production database .*--force-production"):
        restore_backup(production(database_url, tmp_path), "latest", target)


def test_pgdatabase_naming_the_production_database_is_refused(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port, dbname = parts(database_url)
    monkeypatch.setenv("PGDATABASE", dbname)
    with pytest.raises(PermanentError, match="refusing to restore into the production database"):
        restore_backup(production(database_url, tmp_path), "latest", f"postgresql://postgres@{host}:{port}")


def test_a_second_address_for_the_same_server_is_refused(database_url: str, tmp_path: Path) -> None:
    """Railway: DATABASE_URL names the private host, operators paste the public proxy URL."""
    host, port, dbname = parts(database_url)
    with tcp_proxy(host, int(port)) as proxy_port:
        target = f"postgresql://postgres@127.0.0.1:{proxy_port}/{dbname}"
        with pytest.raises(PermanentError, match="refusing to restore into the production database"):
            restore_backup(production(database_url, tmp_path), "latest", target)


@pytest.mark.parametrize("environment", ["Production", "PRODUCTION", " production "])
def test_environment_is_compared_without_regard_to_case(database_url: str, tmp_path: Path, environment: str) -> None:
    settings = production(database_url, tmp_path, ENVIRONMENT=environment)
    with pytest.raises(PermanentError, match="refusing to restore into the production database"):
        check_restore_target(settings, PgTarget(database_url), force_production=False, environ={})


def test_a_named_production_source_is_refused(
    pg_admin_url: str, database_url: str, new_database: str, tmp_path: Path
) -> None:
    settings = production(pg_admin_url, tmp_path)
    environ = {"BACKUP_DATABASE_URLS": f"orders={database_url}"}
    check_restore_target(settings, PgTarget(new_database), force_production=False, environ=environ)
    with pytest.raises(PermanentError, match="it is the database BACKUP_DATABASE_URLS entry 'orders' names"):
        target = PgTarget(SPELLINGS["key=value"](*parts(database_url)))
        check_restore_target(settings, target, force_production=False, environ=environ)


def test_with_backup_all_databases_every_database_on_the_server_is_production(
    database_url: str, new_database: str, tmp_path: Path
) -> None:
    settings = production(database_url, tmp_path)
    with pytest.raises(PermanentError, match="BACKUP_ALL_DATABASES=true"):
        check_restore_target(
            settings, PgTarget(new_database), force_production=False, environ={"BACKUP_ALL_DATABASES": "true"}
        )


def test_a_different_database_on_the_same_server_is_restored(
    database_url: str, new_database: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT generate_series(1, 7) AS id")
    settings = production(database_url, tmp_path)
    backup_database(settings)
    target = SPELLINGS["hostname"](*parts(new_database))
    assert parts(new_database)[2] == restore_backup(settings, "latest", target).database
    with psycopg.connect(new_database) as conn:
        assert (7,) == conn.execute("SELECT count(*) FROM kept").fetchone()


def test_an_unreadable_identity_is_refused_unless_forced(database_url: str, new_database: str, tmp_path: Path) -> None:
    """DATABASE_URL's server cannot be reached: the guard cannot compare, so it refuses."""
    settings = production(f"postgresql://postgres@127.0.0.1:{free_port()}/app", tmp_path)
    with pytest.raises(PermanentError, match=r"identity of DATABASE_URL .* could not be read .*--force-production"):
        check_restore_target(settings, PgTarget(new_database), force_production=False, environ={})
    check_restore_target(settings, PgTarget(new_database), force_production=True, environ={})


def test_outside_production_nothing_is_compared(database_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"DATABASE_URL": database_url, "ENVIRONMENT": "staging"})
    check_restore_target(settings, PgTarget(database_url), force_production=False, environ={})
