"""A password with every reserved URL character works for every connection and child process.

The private cluster demands scram-sha-256 and its password contains ``@ : / % # ? & = +``
and a space, percent-encoded in the URL as a URL requires. Migrate, backup (pg_dump),
verify and restore (pg_restore) and the server's globals (pg_dumpall) all authenticate,
and the password, in either spelling, appears in none of their output.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.conftest import PG_PASSWORD, SENTINEL_PASSWORD, url_with_db
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.timeout(180)


def test_reserved_characters_in_the_password_work_for_every_tool(pg_password_url: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_password_url, autocommit=True) as conn:
        for name in ("ry_pw_app", "ry_pw_copy"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    app_url = url_with_db(pg_password_url, "ry_pw_app")
    port = psycopg.conninfo.conninfo_to_dict(pg_password_url)["port"]
    # The restore target in libpq's key=value spelling, password quoted as libpq wants.
    escaped = PG_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    target = f"host=127.0.0.1 port={port} user=postgres dbname=ry_pw_copy password='{escaped}'"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_items.sql").write_text(
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
        "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 50) g;\n"
    )
    env = {"DATABASE_URL": app_url, "BACKUP_STORAGE_URL": str(tmp_path / "store"), "MIGRATIONS_DIR": str(migrations)}
    outputs = []
    for args, extra in (
        (("migrate", "up"), {}),
        (("backup",), {}),
        (("verify",), {}),
        (("restore", "latest", "--yes"), {"RESTORE_TARGET_URL": target}),
        (("backup", "--all-databases"), {}),
    ):
        result = run_cli(*args, env={**env, **extra})
        outputs.append(result.stdout + result.stderr)
        assert 0 == result.returncode, (args, result.stdout, result.stderr)
    with psycopg.connect(url_with_db(pg_password_url, "ry_pw_copy")) as conn:
        assert (50,) == conn.execute("SELECT count(*) FROM items").fetchone()
    assert list((tmp_path / "store").rglob("*-globals-*.sql.zst")), "pg_dumpall stored the server's globals"
    text = "\n".join(outputs)
    for form in (PG_PASSWORD, quote(PG_PASSWORD, safe=""), SENTINEL_PASSWORD):
        assert form not in text
