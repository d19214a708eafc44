"""`railyard health` and `railyard prune` as a user runs them, with S3_OBJECT_LOCK set, against moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from railyard.core.storage import ObjectLock, StorageLocation
from railyard.core.storage.s3 import S3Store
from tests.e2e.conftest import run_cli
from tests.integration.test_prune import ENV, LATEST, put_backup

pytestmark = pytest.mark.timeout(120)
KEEP_LAST_ONE = {f"BACKUP_KEEP_{rule}": "0" for rule in ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")} | {
    "BACKUP_KEEP_LAST": "1"
}


def lock_env(redis_url: str, pg_admin_url: str, bucket: str, s3_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": pg_admin_url,
        "BACKUP_STORAGE_URL": f"s3://{bucket}/pg",
        "S3_OBJECT_LOCK": "governance",
        "S3_OBJECT_LOCK_DAYS": "7",
        **s3_env,
        **extra,
    }


def storage_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.split()[1] == "storage")


def test_health_checks_the_bucket_has_object_lock(redis_url, pg_admin_url, bucket, locked_bucket, s3_env) -> None:
    """Preflight: FAIL (exit 1) when S3_OBJECT_LOCK asks for a lock the bucket cannot give; ok on a locked bucket."""
    refused = run_cli("health", env=lock_env(redis_url, pg_admin_url, bucket, s3_env))
    assert 1 == refused.returncode, refused.stdout + refused.stderr
    line = storage_line(refused.stdout)
    assert line.startswith("FAIL storage")
    assert f"bucket '{bucket}' does not have object lock enabled" in line

    passed = run_cli("health", env=lock_env(redis_url, pg_admin_url, locked_bucket, s3_env))
    assert 0 == passed.returncode, passed.stdout + passed.stderr
    assert storage_line(passed.stdout).endswith("object lock governance for 7 days")


def test_a_bad_lock_setting_stops_the_cli_at_start(redis_url, pg_admin_url, locked_bucket, s3_env) -> None:
    """Validated at start-up with every other setting: exit 2, each problem named."""
    env = lock_env(redis_url, pg_admin_url, locked_bucket, s3_env, S3_OBJECT_LOCK="forever", S3_OBJECT_LOCK_DAYS="0")
    result = run_cli("health", env=env)
    assert 2 == result.returncode, result.stdout + result.stderr
    assert "S3_OBJECT_LOCK='forever' is not one of governance, compliance" in result.stderr
    assert "S3_OBJECT_LOCK_DAYS=0 is out of range" in result.stderr


def test_prune_reports_locked_backups_as_kept(redis_url, pg_admin_url, locked_bucket, s3_env) -> None:
    """Backups the policy no longer keeps but the lock still protects: "kept: locked until …", nothing deleted."""
    store = S3Store(locked_bucket, addressing_style="path", lock=ObjectLock(mode="GOVERNANCE", days=7))
    location = StorageLocation.parse(f"s3://{locked_bucket}/pg")
    env = lock_env(redis_url, pg_admin_url, locked_bucket, s3_env, ENVIRONMENT=ENV, **KEEP_LAST_ONE)
    keys = [put_backup(store, location, "app", LATEST - timedelta(days=d)) for d in range(2)]
    result = run_cli("prune", env=env)
    assert 0 == result.returncode, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if keys[1].id in line]
    until = store.locked_until(keys[1].key)
    assert until is not None and until > datetime.now(UTC) + timedelta(days=6)
    assert f"  {keys[1].id}  kept: locked until {until.isoformat()} (the policy no longer keeps it)" == line
    assert "deleted 0 backups" in result.stderr
    assert store.head(keys[1].key) is not None and store.head(keys[1].manifest_key) is not None
