"""Manifests are validated on read, and only a manifest found where it says it is counts as a backup."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.backup.catalog import (
    FOREIGN,
    INVALID,
    AmbiguousLatestError,
    InvalidManifestError,
    Manifest,
    backup_key,
    choose_latest,
    find_backup,
    parse_backup_key,
    read_catalog,
)
from railyard.core.errors import NotFoundError, PermanentError
from railyard.core.storage import ObjectStore, StorageLocation
from railyard.core.storage.local import LocalStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ENV = "production"


def manifest_for(location: StorageLocation, series: str, taken_at: datetime, size: int = 4, **changes: Any) -> Manifest:
    key = backup_key(location, ENV, series, taken_at)
    base = Manifest(
        id=key.id,
        key=key.key,
        database="railway",
        environment=ENV,
        host="db.internal:5432",
        server_version="16.4",
        pg_dump_version="16.4",
        format="custom",
        compression="zstd-3",
        size=size,
        raw_size=size,
        sha256="a" * 64,
        started_at=taken_at.isoformat(),
        finished_at=(taken_at + timedelta(seconds=5)).isoformat(),
        duration_s=5.0,
        railyard_version="test",
        series=series,
        source=series,
    )
    return Manifest(**{**asdict(base), **changes})


def put(store: ObjectStore, manifest: Manifest, *, at: str | None = None, body: bytes | None = None) -> str:
    """Write ``manifest`` (or raw ``body``) at ``at`` (default: beside its own key) with a dump beside it."""
    dump_key = at or manifest.key
    store.put_bytes(dump_key, b"dump")
    store.put_bytes(dump_key + ".manifest.json", manifest.to_json() if body is None else body)
    return dump_key


@pytest.fixture
def place(tmp_path: Path) -> tuple[LocalStore, StorageLocation]:
    return LocalStore(tmp_path / "store"), StorageLocation.parse(str(tmp_path / "store"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"finished_at": 1763640000}, "finished_at"),
        ({"finished_at": None}, "finished_at"),
        ({"finished_at": "yesterday"}, "finished_at"),
        ({"finished_at": "2026-11-20T03:00:00"}, "no time zone"),
        ({"size": "210470"}, "size"),
        ({"size": True}, "size"),
        ({"size": -1}, "size"),
        ({"duration_s": "fast"}, "duration_s"),
        ({"sha256": "nope"}, "sha256"),
        ({"pg_dump_version": "sixteen"}, "pg_dump_version"),
        ({"row_counts": {"public.t": "12"}}, "row_counts"),
        ({"encryption": {"recipients": "age1x"}}, "encryption"),
        ({"options": []}, "options"),
        ({"manifest_version": 99}, "manifest_version"),
        ({"id": None}, "'id'"),
    ],
)
def test_wrong_types_are_invalid_with_the_reason(change: dict[str, Any], reason: str) -> None:
    raw = {**asdict(manifest_for(StorageLocation.parse("/s"), "app", NOW)), **change}
    with pytest.raises(InvalidManifestError, match=reason):
        Manifest.from_json(json.dumps(raw).encode(), "k.manifest.json")


def test_a_version_1_manifest_is_valid_and_its_series_is_its_database() -> None:
    raw = asdict(manifest_for(StorageLocation.parse("/s"), "app", NOW))
    for field in ("series", "source", "system_identifier"):
        del raw[field]
    raw["manifest_version"] = 1
    assert "railway" == Manifest.from_json(json.dumps(raw).encode(), "k").series_name


def test_invalid_and_foreign_manifests_are_reported_not_used(place: tuple[LocalStore, StorageLocation]) -> None:
    store, location = place
    good = manifest_for(location, "app", NOW - timedelta(days=1))
    put(store, good)
    broken = manifest_for(location, "app", NOW - timedelta(hours=2))
    put(store, broken, body=json.dumps({**asdict(broken), "finished_at": 17}).encode())
    # An operator's copy of a backup, with its dump, under another name in another date folder.
    copy_at = backup_key(location, ENV, "app", NOW - timedelta(days=3)).key
    put(store, good, at=copy_at)
    missing_dump = manifest_for(location, "app", NOW - timedelta(days=2))
    store.put_bytes(missing_dump.key + ".manifest.json", missing_dump.to_json())
    resized = manifest_for(location, "app", NOW - timedelta(days=4), size=999)
    put(store, resized)

    catalog = read_catalog(store, location, environment=ENV)

    assert [good.id] == [m.id for m in catalog.backups]
    assert {
        (INVALID, broken.key + ".manifest.json"),
        (FOREIGN, copy_at + ".manifest.json"),
        (INVALID, missing_dump.key + ".manifest.json"),
        (INVALID, resized.key + ".manifest.json"),
    } == {(p.kind, p.key) for p in catalog.problems}
    assert good.id == choose_latest(catalog, requested=None, default_series="app", now=NOW).id
    with pytest.raises(PermanentError, match=r"not used: .*finished_at"):
        find_backup(store, location, broken.id, environment=ENV)


def test_latest_is_never_a_backup_from_the_future(place: tuple[LocalStore, StorageLocation]) -> None:
    store, location = place
    past = manifest_for(location, "app", NOW - timedelta(hours=1))
    put(store, past)
    put(store, manifest_for(location, "app", NOW + timedelta(days=30)))
    skewed = manifest_for(
        location, "app", NOW - timedelta(minutes=30), finished_at=(NOW + timedelta(minutes=2)).isoformat()
    )
    put(store, skewed)  # within the tolerance: ordinary clock skew
    catalog = read_catalog(store, location, environment=ENV)
    assert 3 == len(catalog.backups)
    assert skewed.id == choose_latest(catalog, requested="app", default_series=None, now=NOW).id


def test_latest_is_database_urls_series_unless_another_is_named(place: tuple[LocalStore, StorageLocation]) -> None:
    store, location = place
    put(store, manifest_for(location, "main", NOW - timedelta(hours=5)))
    newer = manifest_for(location, "analytics", NOW - timedelta(hours=1))
    put(store, newer)
    catalog = read_catalog(store, location, environment=ENV)
    assert "main" == choose_latest(catalog, requested=None, default_series="main", now=NOW).series_name
    assert newer.id == choose_latest(catalog, requested="analytics", default_series="main", now=NOW).id
    with pytest.raises(AmbiguousLatestError, match=r"several series \(analytics, main\); pass --database"):
        choose_latest(catalog, requested=None, default_series="railway", now=NOW)
    with pytest.raises(NotFoundError, match="series with backups: analytics, main"):
        choose_latest(catalog, requested="app", default_series="main", now=NOW)


def test_token_keys_parse_and_ids_carry_the_token() -> None:
    location = StorageLocation.parse("s3://b/pg")
    key = backup_key(location, ENV, "app", NOW, token="0a1b2c3d")
    assert "pg/production/app/2026/11/20/app-20261120T120000Z-0a1b2c3d.dump.zst" == key.key
    assert "app-20261120T120000Z-0a1b2c3d" == key.id
    assert key == parse_backup_key(location, key.key)
    assert parse_backup_key(location, "pg/production/app/2026/13/45/app-20261345T120000Z.dump.zst") is None
    assert parse_backup_key(location, "pg/production/%61pp/2026/11/20/%61pp-20261120T120000Z.dump.zst") is None
