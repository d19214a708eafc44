"""Backup pruning against a real S3 server (moto over HTTP) and a local directory."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.backup.catalog import BackupKey, Manifest, backup_key
from jobs.retention.policy import RetentionPolicy
from jobs.retention.prune import prune
from railyard.core.errors import StorageError
from railyard.core.storage import ObjectStore, StorageLocation
from railyard.core.storage.base import IncompleteUpload, ObjectInfo, Upload
from railyard.core.storage.local import PARTIAL_MARK, LocalStore
from railyard.core.storage.s3 import S3Store, make_client

ENV = "production"
# An hour ago, so that no backup in these tests is dated in the future whatever the time of day.
LATEST = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
POLICY = RetentionPolicy(last=2, hourly=0, daily=3, weekly=0, monthly=0, yearly=0)


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ObjectStore, StorageLocation]]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store"), StorageLocation.parse(str(tmp_path / "store"))
    else:
        bucket = request.getfixturevalue("bucket")
        yield S3Store(bucket, addressing_style="path"), StorageLocation.parse(f"s3://{bucket}/railyard/backups")


def put_backup(
    store: ObjectStore,
    location: StorageLocation,
    database: str,
    taken_at: datetime,
    *,
    environment: str = ENV,
    manifest: bool = True,
    verified: str | None = None,
) -> BackupKey:
    key = backup_key(location, environment, database, taken_at)
    dump = f"dump of {key.id}".encode()
    store.put_bytes(key.key, dump)
    if manifest:
        record = Manifest(
            id=key.id,
            key=key.key,
            database=database,
            environment=environment,
            host="127.0.0.1",
            server_version="15.4",
            pg_dump_version="15.4",
            format="custom",
            compression="zstd",
            size=len(dump),
            raw_size=len(dump),
            sha256="0" * 64,
            started_at=taken_at.isoformat(),
            finished_at=(taken_at + timedelta(minutes=1)).isoformat(),
            duration_s=60.0,
            railyard_version="0.1.0",
        )
        store.put_bytes(key.manifest_key, record.to_json())
    if verified is not None:
        store.put_bytes(key.key + ".verified.json", json.dumps({"result": verified}).encode())
    return key


def keys(store: ObjectStore) -> set[str]:
    return {info.key for info in store.list("")}


def days_ago(n: int, minutes: int = 0) -> datetime:
    return LATEST - timedelta(days=n, minutes=minutes)


def foreign_objects(location: StorageLocation) -> list[str]:
    """Objects Railyard did not write, some of them shaped almost like backups."""
    stamp = days_ago(30).strftime("%Y/%m/%d")
    name = f"app-{days_ago(30):%Y%m%dT%H%M%SZ}"
    return [
        location.key(ENV, "app", "notes.txt"),
        location.key(ENV, "app", stamp, f"{name}.dump.zst.bak"),
        location.key(ENV, "app", stamp, f"other-{days_ago(30):%Y%m%dT%H%M%SZ}.dump.zst"),
        location.key(ENV, "app", "2026/13/45", f"{name}.dump.zst"),
        location.key("README.md"),
        f"elsewhere/{ENV}/app/{stamp}/{name}.dump.zst",
    ]


def test_prune_deletes_exactly_the_planned_objects(place: tuple[ObjectStore, StorageLocation]) -> None:
    """Ten daily backups under last 2 / daily 3 keep three; other databases, environments and foreign keys stay."""
    store, location = place
    app = [put_backup(store, location, "app", days_ago(n)) for n in range(10)]
    billing = [put_backup(store, location, "billing", days_ago(n, minutes=30)) for n in range(3)]
    staging = [put_backup(store, location, "app", days_ago(n), environment="staging") for n in range(5)]
    foreign = foreign_objects(location)
    for key in foreign:
        store.put_bytes(key, b"not ours")
    before = keys(store)

    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC))

    deleted = app[3:]
    assert [k.id for k in deleted] == [d.backup.id for d in report.deleted]
    assert {k.id for k in app[:3] + billing} == {d.backup.id for d in report.kept}
    gone = {k.key for k in deleted} | {k.manifest_key for k in deleted}
    assert before - gone == keys(store)
    assert all(key in keys(store) for key in foreign)
    assert all(k.key in keys(store) for k in staging)
    assert report.orphans == []


def put_globals(store: ObjectStore, location: StorageLocation, host: str, taken_at: datetime) -> str:
    """A globals file where whole-server backups write it."""
    key = location.key(ENV, "_globals", f"{taken_at:%Y/%m/%d}", f"{host}-globals-{taken_at:%Y%m%dT%H%M%SZ}.sql.zst")
    store.put_bytes(key, b"CREATE ROLE app;")
    return key


def test_globals_older_than_every_kept_backup_go_but_one(place: tuple[ObjectStore, StorageLocation]) -> None:
    """Per server, globals from the oldest kept backup on stay, with the newest one before it (its roles)."""
    store, location = place
    for n in range(10):
        put_backup(store, location, "app", days_ago(n))
    main = [put_globals(store, location, "db_5432", days_ago(n, minutes=-10)) for n in range(10)]
    other = put_globals(store, location, "replica_5432", days_ago(9))
    foreign = location.key(ENV, "_globals", "notes.txt")
    store.put_bytes(foreign, b"not ours")

    planned = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC), dry_run=True)
    assert sorted(main[4:]) == [entry["key"] for entry in planned.to_dict()["globals_delete"]]
    assert set(main) <= keys(store)

    prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC))
    assert {*main[:4], other, foreign} == {k for k in keys(store) if "/_globals/" in k}


def test_globals_stay_when_no_backup_is_kept(place: tuple[ObjectStore, StorageLocation]) -> None:
    store, location = place
    globals_keys = [put_globals(store, location, "db_5432", days_ago(n)) for n in range(3)]
    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC))
    assert ([], set(globals_keys)) == (report.stale_globals, keys(store))


def test_dry_run_deletes_nothing_and_reports_the_plan(place: tuple[ObjectStore, StorageLocation]) -> None:
    store, location = place
    app = [put_backup(store, location, "app", days_ago(n)) for n in range(5)]
    before = keys(store)
    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC), dry_run=True)
    assert before == keys(store)
    plan = report.to_dict()
    assert [k.id for k in app[3:]] == [entry["id"] for entry in plan["delete"]]
    assert [k.key for k in app[3:]] == [entry["key"] for entry in plan["delete"]]
    assert [k.manifest_key for k in app[3:]] == [entry["manifest_key"] for entry in plan["delete"]]
    assert [
        ["last", f"daily {days_ago(0):%Y-%m-%d}"],
        ["last", f"daily {days_ago(1):%Y-%m-%d}"],
        [f"daily {days_ago(2):%Y-%m-%d}"],
    ] == [entry["reasons"] for entry in plan["keep"]]
    assert plan["dry_run"] is True


def test_orphans_and_their_markers_are_removed_only_when_stale(place: tuple[ObjectStore, StorageLocation]) -> None:
    """A dump with no manifest is an orphan after 24 h; a younger one may be a backup being committed."""
    store, location = place
    kept = put_backup(store, location, "app", days_ago(0))
    orphan = put_backup(store, location, "app", days_ago(3), manifest=False, verified="passed")
    now = datetime.now(UTC)

    fresh = prune(store, location, environment=ENV, policy=POLICY, now=now)
    assert fresh.orphans == []
    assert store.head(orphan.key) is not None

    later = prune(store, location, environment=ENV, policy=POLICY, now=now + timedelta(hours=25))
    assert sorted([orphan.key, orphan.key + ".verified.json"]) == sorted(o.key for o in later.orphans)
    assert {kept.key, kept.manifest_key} == keys(store)


def test_stale_incomplete_uploads_in_the_layout_are_aborted(place: tuple[ObjectStore, StorageLocation]) -> None:
    """Only an upload whose own key stamp and server Initiated time are both over a day old is aborted."""
    store, location = place
    put_backup(store, location, "app", days_ago(0))
    ours = backup_key(location, ENV, "app", days_ago(2)).key
    running = backup_key(location, ENV, "app", days_ago(0, minutes=30)).key  # moto still says 2010
    theirs = location.key(ENV, "app", "upload-in-progress.bin")
    for key in (ours, running, theirs):
        if isinstance(store, S3Store):
            make_client("path").create_multipart_upload(Bucket=store.bucket, Key=key)
        else:
            partial = store.path(key).with_name(store.path(key).name + PARTIAL_MARK + "abc123")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"half a dump")
            stale = (datetime.now(UTC) - timedelta(days=2)).timestamp()
            os.utime(partial, (stale, stale))
    # moto reports every upload as initiated in 2010, so all look stale there; the key's own stamp decides.
    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC))
    assert [ours] == [u.key for u in report.incomplete_uploads]
    assert [running] == [u.key for u, _ in report.uploads_left]
    assert sorted([running, theirs]) == sorted(u.key for u in store.list_incomplete_uploads(location.key(ENV) + "/"))


def test_newest_passed_verification_protects_a_backup(place: tuple[ObjectStore, StorageLocation]) -> None:
    """The newest backup whose marker says "passed" survives; a "failed" one does not, and markers go with backups."""
    store, location = place
    newest = put_backup(store, location, "app", days_ago(0))
    put_backup(store, location, "app", days_ago(1))
    put_backup(store, location, "app", days_ago(2))
    failed = put_backup(store, location, "app", days_ago(5), verified="failed")
    passed = put_backup(store, location, "app", days_ago(8), verified="passed")
    older_passed = put_backup(store, location, "app", days_ago(9), verified="passed")

    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC))

    assert [d.reasons for d in report.kept if d.backup.id == passed.id] == [("newest verified",)]
    assert {failed.id, older_passed.id} == {d.backup.id for d in report.deleted}
    remaining = keys(store)
    assert {passed.key, passed.manifest_key, passed.key + ".verified.json", newest.key} <= remaining
    assert not {failed.key + ".verified.json", older_passed.key + ".verified.json"} & remaining


def test_unreadable_manifest_leaves_its_backup_alone(place: tuple[ObjectStore, StorageLocation]) -> None:
    store, location = place
    put_backup(store, location, "app", days_ago(0))
    broken = put_backup(store, location, "app", days_ago(20))
    store.put_bytes(broken.manifest_key, b"{not json")
    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC) + timedelta(days=2))
    assert [broken.manifest_key] == report.unreadable
    assert {broken.key, broken.manifest_key} <= keys(store)
    assert report.orphans == []


class CrashingStore(ObjectStore):
    """A real store whose Nth delete fails, as a network drop or a killed process would leave it."""

    def __init__(self, inner: ObjectStore, fail_on_delete: int):
        self.inner = inner
        self.deletes = 0
        self.fail_on_delete = fail_on_delete

    def delete(self, key: str) -> None:
        self.deletes += 1
        if self.deletes == self.fail_on_delete:
            raise StorageError("connection reset")
        self.inner.delete(key)

    def location(self, key: str = "") -> str:
        return self.inner.location(key)

    def check(self) -> str:
        return self.inner.check()

    def open_upload(self, key: str, *, part_size: int = 0, concurrency: int = 4) -> Upload:
        return self.inner.open_upload(key)

    def iter_get(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self.inner.iter_get(key, chunk_size)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        self.inner.put_bytes(key, data, if_absent=if_absent)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        return self.inner.list_incomplete_uploads(prefix)

    def abort_incomplete_upload(self, upload: IncompleteUpload) -> None:
        self.inner.abort_incomplete_upload(upload)


def test_crash_between_manifest_and_dump_leaves_an_orphan_not_a_broken_backup(
    place: tuple[ObjectStore, StorageLocation],
) -> None:
    """The manifest goes first; the dump left by a crash is cleaned as an orphan by the next run."""
    store, location = place
    for n in range(4):
        put_backup(store, location, "app", days_ago(n))
    doomed = backup_key(location, ENV, "app", days_ago(3))
    with pytest.raises(StorageError):
        prune(CrashingStore(store, fail_on_delete=2), location, environment=ENV, policy=POLICY, now=datetime.now(UTC))
    assert store.head(doomed.manifest_key) is None
    assert store.head(doomed.key) is not None

    report = prune(store, location, environment=ENV, policy=POLICY, now=datetime.now(UTC) + timedelta(hours=25))
    assert [doomed.key] == [o.key for o in report.orphans]
    assert store.head(doomed.key) is None
    assert len(report.kept) == 3
