"""The README's restore-without-Railyard recipe works as written, with standard tools only."""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest

from jobs.backup.dump import backup_database
from railyard.core.settings import Settings
from tests.conftest import ROOT, url_with_db
from tests.e2e.conftest import child_env

pytestmark = pytest.mark.timeout(120)

FILLED_IN = re.compile(r"^(BUCKET|KEY|TARGET_URL)=.*$", re.MULTILINE)


def readme_recipe() -> str:
    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- recipe: restore-without-railyard -->")
    block = re.search(r"```sh\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None
    return block.group(1)


def test_recipe_restores_an_s3_backup(database_url, pg_admin_url, bucket, s3_env, tmp_path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 99) i")
    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": f"s3://{bucket}/pg", "S3_ADDRESSING_STYLE": "path"}
    )
    manifest = backup_database(settings)
    target_db = f"{database_url.rsplit('/', 1)[1]}_recipe"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target_db}"')
    try:
        recipe = readme_recipe()
        assert 3 == len(FILLED_IN.findall(recipe))
        values = {"BUCKET": bucket, "KEY": manifest.key, "TARGET_URL": url_with_db(pg_admin_url, target_db)}
        script = FILLED_IN.sub(lambda m: f"{m.group(1)}={values[m.group(1)]}", recipe)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=child_env(**s3_env),
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert "checksum ok" in result.stdout
        with psycopg.connect(url_with_db(pg_admin_url, target_db)) as conn:
            row = conn.execute("SELECT count(*), (SELECT v FROM t WHERE id = 99) FROM t").fetchone()
        assert (99, "v99") == row
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target_db}" WITH (FORCE)')
