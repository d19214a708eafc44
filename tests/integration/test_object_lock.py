"""S3 Object Lock against moto with object lock enabled on the bucket: locked writes, preflight, lock-aware prune."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from jobs.backup.dump import backup_database
from jobs.retention.policy import RetentionPolicy
from jobs.retention.prune import prune
from railyard.core.errors import PermanentError
from railyard.core.settings import Settings
from railyard.core.storage import ObjectLock, StorageLocation, open_store
from railyard.core.storage.s3 import S3Store, make_client
from tests.integration.test_prune import ENV, LATEST, put_backup

pytestmark = pytest.mark.timeout(120)

LOCK = ObjectLock(mode="GOVERNANCE", days=3)
KEEP_ONE = RetentionPolicy(last=1, hourly=0, daily=0, weekly=0, monthly=0, yearly=0)


def retention(bucket: str, key: str) -> tuple[str | None, datetime | None]:
    head = make_client("path").head_object(Bucket=bucket, Key=key)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def versions(bucket: str) -> list[str]:
    listing = make_client("path").list_object_versions(Bucket=bucket)
    return sorted(v["Key"] for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])])


def expire(bucket: str, key: str) -> None:
    """Move the lock of every version of ``key`` into the past, as time passing would."""
    client = make_client("path")
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for version in client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []):
        if version["Key"] != key:
            continue
        client.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version["VersionId"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": past},
            BypassGovernanceRetention=True,
        )


def test_small_and_multipart_writes_carry_the_retention_date(locked_bucket: str) -> None:
    """put_bytes (one PUT with Content-MD5) and a multipart upload both end up locked for S3_OBJECT_LOCK_DAYS."""
    store = S3Store(locked_bucket, addressing_style="path", lock=LOCK)
    before = datetime.now(UTC).replace(microsecond=0)
    store.put_bytes("a/manifest.json", b"{}")
    with store.open_upload("a/dump", part_size=8 * 1024 * 1024, concurrency=2) as upload:
        upload.write(os.urandom(9 * 1024 * 1024))  # two parts: a real multipart upload
        upload.complete()
    for key in ("a/manifest.json", "a/dump"):
        mode, until = retention(locked_bucket, key)
        assert "GOVERNANCE" == mode
        assert until is not None
        assert before + timedelta(days=3) <= until <= datetime.now(UTC) + timedelta(days=3)
        assert until == store.locked_until(key)


def test_a_locked_object_cannot_be_deleted_by_the_store(locked_bucket: str) -> None:
    """The worker's delete removes versions, and S3 refuses while the lock holds; once expired it goes entirely."""
    store = S3Store(locked_bucket, addressing_style="path", lock=LOCK)
    store.put_bytes("k", b"data")
    with pytest.raises(PermanentError):
        store.delete("k")
    assert b"data" == store.get_bytes("k")
    expire(locked_bucket, "k")
    store.delete("k")
    assert [] == versions(locked_bucket)


def test_check_passes_on_a_locked_bucket_and_refuses_others(locked_bucket: str, bucket: str, tmp_path: object) -> None:
    """Preflight: object lock asked for must be enabled on the bucket; a directory cannot lock at all."""
    assert "object lock governance for 3 days" in S3Store(locked_bucket, addressing_style="path", lock=LOCK).check()
    with pytest.raises(PermanentError, match=r"does not have object lock enabled.*unset S3_OBJECT_LOCK"):
        S3Store(bucket, addressing_style="path", lock=LOCK).check()
    with pytest.raises(PermanentError, match="cannot lock objects"):
        open_store(str(tmp_path), lock=LOCK).check()
    assert "reachable" in S3Store(bucket, addressing_style="path").check()


def test_prune_keeps_locked_backups_and_deletes_them_once_expired(locked_bucket: str) -> None:
    """Prune never asks to delete a locked object: "locked until"; after the lock expires, it deletes."""
    store = S3Store(locked_bucket, addressing_style="path", lock=LOCK)
    location = StorageLocation.parse(f"s3://{locked_bucket}/pg")
    keys = [put_backup(store, location, "app", LATEST - timedelta(days=d)) for d in range(3)]
    objects = versions(locked_bucket)

    report = prune(store, location, environment=ENV, policy=KEEP_ONE, now=datetime.now(UTC))

    assert [] == report.deleted
    assert {k.key for k in keys[1:]} == set(report.locked)
    for key in keys[1:]:
        until = report.locked[key.key]
        assert (f"locked until {until.isoformat()}",) == next(d.reasons for d in report.kept if d.backup.key == key.key)
    assert objects == versions(locked_bucket)  # nothing deleted, not even hidden behind a delete marker
    assert report.to_dict()["keep"][1]["locked_until"]

    for key in keys[2:]:
        expire(locked_bucket, key.key)
        expire(locked_bucket, key.manifest_key)
    report = prune(store, location, environment=ENV, policy=KEEP_ONE, now=datetime.now(UTC))

    assert [keys[2].key] == [d.backup.key for d in report.deleted]
    assert {keys[1].key} == set(report.locked)
    assert sorted(o for o in objects if not o.startswith(keys[2].key)) == versions(locked_bucket)


def test_backup_refuses_to_start_when_the_bucket_has_no_object_lock(
    database_url: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With S3_OBJECT_LOCK set, a backup to a bucket without object lock fails before pg_dump, writing nothing."""
    monkeypatch.setenv("S3_OBJECT_LOCK", "compliance")
    monkeypatch.setenv("S3_OBJECT_LOCK_DAYS", "7")
    settings = Settings.from_env({"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": f"s3://{bucket}/pg"})
    with pytest.raises(PermanentError, match="does not have object lock enabled"):
        backup_database(settings)
    assert [] == versions(bucket)


def test_backup_to_a_locked_bucket_locks_dump_and_manifest(
    database_url: str, locked_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real backup: its dump and its manifest both carry the configured mode and date."""
    monkeypatch.setenv("S3_OBJECT_LOCK", "compliance")
    monkeypatch.setenv("S3_OBJECT_LOCK_DAYS", "1")
    settings = Settings.from_env({"DATABASE_URL": database_url, "BACKUP_STORAGE_URL": f"s3://{locked_bucket}/pg"})
    manifest = backup_database(settings)
    for key in (manifest.key, manifest.key + ".manifest.json"):
        mode, until = retention(locked_bucket, key)
        assert "COMPLIANCE" == mode
        assert until is not None and until > datetime.now(UTC) + timedelta(hours=23)
