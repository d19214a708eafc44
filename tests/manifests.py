"""Backups placed in storage directly (dump object + manifest), for tests that need a catalog's history."""

from __future__ import annotations

from datetime import datetime, timedelta

from jobs.backup.catalog import Manifest, backup_key
from railyard.core.storage import ObjectStore, StorageLocation


def put_backup(
    store: ObjectStore, location: StorageLocation, *, environment: str, database: str, finished_at: datetime
) -> Manifest:
    """A committed backup of ``database`` that finished at ``finished_at``, in Railyard's layout."""
    started_at = finished_at - timedelta(seconds=5)
    key = backup_key(location, environment, database, started_at)
    data = b"not a real dump: only the catalog matters here"
    manifest = Manifest(
        id=key.id,
        key=key.key,
        database=database,
        environment=environment,
        host="127.0.0.1:5432",
        server_version="16.0",
        pg_dump_version="16.0",
        format="custom",
        compression="zstd",
        size=len(data),
        raw_size=len(data),
        sha256="0" * 64,
        started_at=started_at.isoformat(),
        finished_at=finished_at.isoformat(),
        duration_s=5.0,
        railyard_version="test",
    )
    store.put_bytes(key.key, data)
    store.put_bytes(key.manifest_key, manifest.to_json())
    return manifest
