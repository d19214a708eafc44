"""The copy job: a completed backup streamed to the second destination (BACKUP_COPY_STORAGE_URL).

    primary dump  ->  sha256 + size checked against the manifest  ->  create-only upload to the copy
                  ->  the copy read back and checked again         ->  the copy's manifest, written last

Enqueued on the ``backup`` queue once a backup's manifest is committed. A source that does
not match its manifest is refused (permanent): the upload is aborted and no copy appears.
The copy's manifest records the copy's own key, so the copy store reads like any backup store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import structlog

from jobs.backup.catalog import Manifest, backup_key, parse_backup_key
from jobs.backup.copy_config import CopyConfig
from railyard.core.errors import NotFoundError, ObjectExistsError, PermanentError
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore, StorageLocation, choose_part_size, open_backup_store

log = structlog.get_logger()

COPY_JOB = "jobs.copy.copy_backup"


def copy_key_for(manifest: Manifest, primary: StorageLocation, copy: StorageLocation) -> str:
    """The dump key of ``manifest``'s backup at the copy: the same layout under the copy's prefix."""
    place = parse_backup_key(primary, manifest.key)
    if place is None:
        raise PermanentError(f"{manifest.key!r} is not a backup key under {primary}; it cannot be copied")
    return backup_key(
        copy,
        place.environment,
        place.series,
        place.taken_at,
        encrypted=manifest.encryption is not None,
        token=place.token,
    ).key


def copy_backup(key: str) -> dict[str, Any]:
    """RQ job ``jobs.copy.copy_backup``: copy the backup whose dump is ``key`` in the primary store."""
    settings = Settings.from_env()
    config = CopyConfig.from_env()
    if config is None:
        log.info("backup_copy_skipped", key=key, reason="BACKUP_COPY_STORAGE_URL is not set")
        return {"skipped": True, "key": key}
    primary, primary_location = open_backup_store(settings)
    return copy_one(primary, primary_location, config.open_store(settings), config.location, key)


def copy_one(
    primary: ObjectStore, primary_location: StorageLocation, copy: ObjectStore, copy_location: StorageLocation, key: str
) -> dict[str, Any]:
    """Copy one backup (dump, then manifest) from ``primary`` to ``copy``; safe to run again."""
    manifest_key = key + ".manifest.json"
    try:
        manifest = Manifest.from_json(primary.get_bytes(manifest_key), manifest_key)
    except NotFoundError as exc:
        where = primary.location(manifest_key)
        raise PermanentError(f"backup {key!r} has no manifest at {where}; nothing to copy") from exc
    if manifest.key != key:
        raise PermanentError(f"manifest {manifest_key!r} describes {manifest.key!r}, not {key!r}; it is not copied")
    target = copy_key_for(manifest, primary_location, copy_location)
    copied = dataclasses.replace(manifest, key=target)
    target_manifest = target + ".manifest.json"
    if copy.head(target_manifest) is not None:
        existing = Manifest.from_json(copy.get_bytes(target_manifest), target_manifest)
        if existing.sha256 != manifest.sha256:
            raise PermanentError(
                f"{copy.location(target_manifest)} describes other bytes than backup {manifest.id!r}; "
                "nothing was overwritten"
            )
        log.info("backup_copy_exists", id=manifest.id, location=copy.location(target))
        return {"id": manifest.id, "key": target, "location": copy.location(target), "already_copied": True}
    t0 = time.monotonic()
    if copy.head(target) is None:
        _stream(primary, copy, manifest, target)
    # Read back what the copy store holds: only bytes that match the manifest get a manifest there.
    _check_bytes(copy, target, manifest, what="the copy")
    try:
        copy.put_bytes(target_manifest, copied.to_json(), if_absent=True)
    except ObjectExistsError:
        log.info("backup_copy_manifest_exists", id=manifest.id, key=target_manifest)
    duration = time.monotonic() - t0
    log.info(
        "backup_copied",
        id=manifest.id,
        series=manifest.series_name,
        bytes=manifest.size,
        duration_s=round(duration, 3),
        location=copy.location(target),
    )
    return {"id": manifest.id, "key": target, "location": copy.location(target), "bytes": manifest.size}


def _stream(primary: ObjectStore, copy: ObjectStore, manifest: Manifest, target: str) -> None:
    """Stream the primary's dump into a create-only upload, completed only when it matches the manifest."""
    digest = hashlib.sha256()
    size = 0
    with copy.open_upload(target, part_size=choose_part_size(manifest.size), concurrency=2, if_absent=True) as upload:
        for chunk in primary.iter_get(manifest.key):
            digest.update(chunk)
            size += len(chunk)
            upload.write(chunk)
        _refuse_mismatch(manifest, digest.hexdigest(), size, f"the primary's dump {primary.location(manifest.key)}")
        try:
            upload.complete()
        except ObjectExistsError:
            log.info("backup_copy_dump_exists", id=manifest.id, key=target)


def _check_bytes(store: ObjectStore, key: str, manifest: Manifest, *, what: str) -> None:
    digest = hashlib.sha256()
    size = 0
    for chunk in store.iter_get(key):
        digest.update(chunk)
        size += len(chunk)
    _refuse_mismatch(manifest, digest.hexdigest(), size, f"{what} at {store.location(key)}")


def _refuse_mismatch(manifest: Manifest, sha256: str, size: int, where: str) -> None:
    if (sha256, size) != (manifest.sha256, manifest.size):
        log.error(
            "backup_copy_refused",
            id=manifest.id,
            expected_sha256=manifest.sha256,
            actual_sha256=sha256,
            expected_bytes=manifest.size,
            actual_bytes=size,
        )
        raise PermanentError(
            f"{where} does not match backup {manifest.id!r}'s manifest (sha256 {sha256[:12]}… and {size} bytes, "
            f"expected {manifest.sha256[:12]}… and {manifest.size}); it was not copied and no copy manifest "
            "was written: run `railyard verify` on it"
        )


def enqueue_copy(settings: Settings, manifest: Manifest) -> None:
    """After a backup's manifest commits: enqueue its copy, where BACKUP_COPY_STORAGE_URL is set.

    A failure to enqueue never fails the backup itself; it is logged, and the copy's staleness shows it.
    """
    if CopyConfig.from_env() is None:
        return
    # Redis and rq load here, once a copy is configured: `railyard backup` without one never needs them.
    from redis import Redis
    from rq import get_current_job

    from railyard.core.client import enqueue

    job = get_current_job()
    try:
        connection = job.connection if job is not None else Redis.from_url(settings.redis_url)
        copy_job = enqueue(COPY_JOB, connection, serializer=settings.serializer, key=manifest.key)
    except Exception as exc:  # the backup is committed whatever Redis says
        log.error("backup_copy_not_enqueued", id=manifest.id, key=manifest.key, error=str(exc))
        return
    log.info("backup_copy_enqueued", id=manifest.id, job_id=copy_job.id)
