"""`railyard health` against real services: passes locally, fails clearly, never prints a secret."""

from __future__ import annotations

import pytest

from tests.conftest import SENTINEL_PASSWORD, free_port
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.timeout(120)


def test_health_passes_against_local_services(redis_url, pg_admin_url, tmp_path) -> None:
    result = run_cli(
        "health", env={"REDIS_URL": redis_url, "DATABASE_URL": pg_admin_url, "BACKUP_STORAGE_URL": str(tmp_path)}
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert ["ok", "ok", "ok"] == [line.split()[0] for line in result.stdout.splitlines()]


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
