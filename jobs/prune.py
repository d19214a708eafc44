"""Apply the backup retention plan to a store, and clean what crashed runs left behind.

Only objects under the configured location, in the environment's part of Railyard's key
layout, are ever considered: anything else in the bucket is never read or deleted. A
backup is removed manifest first, then dump, so a crash in between leaves a dump with no
manifest (an orphan, removed by a later run), never a manifest pointing at nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from jobs.catalog import (
    MANIFEST_SUFFIX,
    STAMP_FORMAT,
    VERIFIED_SUFFIX,
    Manifest,
    key_segment,
    list_backups,
    parse_backup_key,
)
from jobs.retention_policy import BackupRecord, Decision, RetentionPolicy, plan_retention
from jobs.storage import IncompleteUpload, ObjectInfo, ObjectStore, StorageLocation
from railyard.errors import NotFoundError

log = structlog.get_logger()

# Restore verification writes ``<dump key>.verified.json`` with ``"result": "passed"`` beside a backup.

VERIFIED_PASSED = "passed"
# A dump without a manifest younger than this may be a backup still being committed.
ORPHAN_MIN_AGE = timedelta(hours=24)
INCOMPLETE_UPLOAD_MIN_AGE = timedelta(hours=24)
# Roles and tablespaces saved by whole-server backups (jobs.backup.backup_globals).
_GLOBALS_KEY = re.compile(
    r"^_globals/\d{4}/\d{2}/\d{2}/(?P<host>[^/]+)-globals-(?P<stamp>\d{8}T\d{6}Z)\.sql\.zst(?:\.age)?$"
)


@dataclass
class PruneReport:
    environment: str
    location: str
    policy: str
    dry_run: bool
    decisions: list[Decision] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)
    incomplete_uploads: list[IncompleteUpload] = field(default_factory=list)
    stale_globals: list[ObjectInfo] = field(default_factory=list)  # no kept backup is older than the next one
    unreadable: list[str] = field(default_factory=list)  # manifests skipped, so their backups are untouched

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def deleted(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    def to_dict(self) -> dict[str, Any]:
        def backup(d: Decision) -> dict[str, Any]:
            entry: dict[str, Any] = {
                "id": d.backup.id,
                "environment": d.backup.environment,
                "database": d.backup.database,
                "taken_at": d.backup.taken_at.isoformat(),
                "key": d.backup.key,
                "manifest_key": d.backup.key + MANIFEST_SUFFIX,
            }
            if d.keep:
                entry["reasons"] = list(d.reasons)
            return entry

        return {
            "environment": self.environment,
            "location": self.location,
            "policy": self.policy,
            "dry_run": self.dry_run,
            "keep": [backup(d) for d in self.kept],
            "delete": [backup(d) for d in self.deleted],
            "orphans": [{"key": o.key, "size": o.size, "modified": o.modified.isoformat()} for o in self.orphans],
            "incomplete_uploads": [
                {"key": u.key, "upload_id": u.upload_id, "initiated": u.initiated.isoformat()}
                for u in self.incomplete_uploads
            ],
            "unreadable_manifests": list(self.unreadable),
            "globals_delete": [
                {"key": g.key, "size": g.size, "modified": g.modified.isoformat()} for g in self.stale_globals
            ],
        }


def prune(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str,
    policy: RetentionPolicy,
    now: datetime,
    dry_run: bool = False,
) -> PruneReport:
    """Plan retention for ``environment``'s backups and, unless ``dry_run``, carry it out."""
    report = PruneReport(environment=environment, location=str(location), policy=policy.describe(), dry_run=dry_run)
    prefix = location.key(key_segment(environment)) + "/"
    listing = {info.key: info for info in store.list(prefix)}

    def unreadable(key: str, exc: Exception) -> None:
        log.warning("manifest_unreadable", key=key, error=str(exc))
        report.unreadable.append(key)

    manifests = list_backups(store, location, environment=environment, on_corrupt=unreadable)
    records = [r for r in (_record(m, location, listing) for m in manifests) if r is not None]
    records = _mark_newest_verified(store, records, listing)
    report.decisions = plan_retention(records, policy, now)
    report.orphans = _orphans(location, listing, now)
    report.stale_globals = _stale_globals(prefix, listing, report.kept)
    report.incomplete_uploads = [
        u
        for u in store.list_incomplete_uploads(prefix)
        if u.initiated < now - INCOMPLETE_UPLOAD_MIN_AGE and parse_backup_key(location, u.key) is not None
    ]
    log.info(
        "prune_planned",
        environment=environment,
        backups=len(report.decisions),
        keep=len(report.kept),
        delete=len(report.deleted),
        orphans=len(report.orphans),
        incomplete_uploads=len(report.incomplete_uploads),
        stale_globals=len(report.stale_globals),
        dry_run=dry_run,
    )
    if dry_run:
        return report

    for decision in report.deleted:
        _delete_backup(store, decision.backup.key, listing)
        log.info("backup_deleted", id=decision.backup.id, database=decision.backup.database, key=decision.backup.key)
    for orphan in report.orphans:
        store.delete(orphan.key)
        log.info("orphan_deleted", key=orphan.key, size=orphan.size)
    for upload in report.incomplete_uploads:
        store.abort_incomplete_upload(upload)
        log.info("incomplete_upload_aborted", key=upload.key)
    for stale in report.stale_globals:
        store.delete(stale.key)
        log.info("globals_deleted", key=stale.key)
    log.info("prune_finished", environment=environment, deleted=len(report.deleted), orphans=len(report.orphans))
    return report


def _record(manifest: Manifest, location: StorageLocation, listing: dict[str, ObjectInfo]) -> BackupRecord | None:
    """The planner's view of a backup, or None when the manifest does not describe its own place."""
    parsed = parse_backup_key(location, manifest.key)
    if parsed is None or parsed.key + MANIFEST_SUFFIX not in listing or parsed.id != manifest.id:
        log.warning("manifest_key_mismatch", id=manifest.id, key=manifest.key)
        return None
    return BackupRecord(
        id=parsed.id,
        environment=parsed.environment,
        database=parsed.database,
        taken_at=parsed.taken_at,
        key=parsed.key,
    )


def _mark_newest_verified(
    store: ObjectStore, records: list[BackupRecord], listing: dict[str, ObjectInfo]
) -> list[BackupRecord]:
    """Flag, per database, the newest backup whose verification marker says it passed."""
    done: set[tuple[str, str]] = set()
    marked: list[BackupRecord] = []
    for record in sorted(records, key=lambda r: r.taken_at, reverse=True):
        group = (record.environment, record.database)
        if group not in done and record.key + VERIFIED_SUFFIX in listing and _passed(store, record.key):
            done.add(group)
            record = replace(record, verified=True)
        marked.append(record)
    return marked


def _passed(store: ObjectStore, dump_key: str) -> bool:
    key = dump_key + VERIFIED_SUFFIX
    try:
        marker = json.loads(store.get_bytes(key))
    except (ValueError, NotFoundError) as exc:
        log.warning("verification_marker_unreadable", key=key, error=str(exc))
        return False
    return isinstance(marker, dict) and marker.get("result") == VERIFIED_PASSED


def _orphans(location: StorageLocation, listing: dict[str, ObjectInfo], now: datetime) -> list[ObjectInfo]:
    """Dumps and verification markers in the layout whose manifest is gone, older than a day."""
    found = []
    for key, info in listing.items():
        dump_key = key[: -len(VERIFIED_SUFFIX)] if key.endswith(VERIFIED_SUFFIX) else key
        if parse_backup_key(location, dump_key) is None:
            continue
        if dump_key + MANIFEST_SUFFIX not in listing and info.modified < now - ORPHAN_MIN_AGE:
            found.append(info)
    return found


def _stale_globals(prefix: str, listing: dict[str, ObjectInfo], kept: list[Decision]) -> list[ObjectInfo]:
    """Globals files no kept backup needs.

    Per server, a kept backup may need the roles as they were when it was taken: every
    globals file from the oldest kept backup on stays, and so does the newest one before
    it. Older ones go. With no backup kept, nothing goes.
    """
    if not kept:
        return []
    oldest = min(d.backup.taken_at for d in kept).strftime(STAMP_FORMAT)
    by_host: dict[str, list[tuple[str, ObjectInfo]]] = {}
    for key, info in listing.items():
        match = _GLOBALS_KEY.match(key[len(prefix) :])
        if match:
            by_host.setdefault(match["host"], []).append((match["stamp"], info))
    stale = []
    for files in by_host.values():
        before = sorted((f for f in files if f[0] <= oldest), key=lambda f: f[0])
        stale += [info for _, info in before[:-1]]
    return sorted(stale, key=lambda info: info.key)


def _delete_backup(store: ObjectStore, dump_key: str, listing: dict[str, ObjectInfo]) -> None:
    store.delete(dump_key + MANIFEST_SUFFIX)  # first: from here on the backup no longer exists
    store.delete(dump_key)
    if dump_key + VERIFIED_SUFFIX in listing:
        store.delete(dump_key + VERIFIED_SUFFIX)
