"""The README's first quick-start command, run as written: ``scripts/quickstart``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, url_with_db
from tests.e2e.conftest import child_env, run_cli

DEMO_DB = "railyard_demo"


def database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


@pytest.mark.timeout(300)
def test_quickstart_backs_up_the_demo_database_restores_it_and_compares(pg_admin_url: str, tmp_path: Path) -> None:
    had_demo = database_exists(pg_admin_url, DEMO_DB)
    env = {"BACKUP_STORAGE_URL": str(tmp_path / "backups"), "QUICKSTART_ADMIN_URL": pg_admin_url}
    quickstart_env = {k: v for k, v in child_env(**env).items() if k != "DATABASE_URL"}  # embedded defaults
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "quickstart")],
            env=quickstart_env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
        assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Done: the backup restored and every table matches." in result.stdout
        assert "MISMATCH" not in result.stdout
        compared = [line.split() for line in result.stdout.splitlines() if line.startswith("    public.")]
        assert [["public.customers", "backup", "5000", "restored", "5000", "ok"]] == [
            c for c in compared if c[0] == "public.customers"
        ]
        assert all(c[-1] == "ok" for c in compared) and len(compared) == 2

        listed = run_cli("backups", "list", "--json", env={**env, "DATABASE_URL": url_with_db(pg_admin_url, DEMO_DB)})
        [backup] = json.loads(listed.stdout)
        assert (DEMO_DB, 5000, 20000) == (
            backup["database"],
            backup["row_counts"]["public.customers"],
            backup["row_counts"]["public.orders"],
        )
        assert not database_exists(pg_admin_url, "railyard_quickstart_restore"), "the scratch database is dropped"
    finally:
        if not had_demo:
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
