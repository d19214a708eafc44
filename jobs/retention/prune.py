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

from jobs.backup.catalog import (
    MANIFEST_SUFFIX,
    STAMP_FORMAT,
    VERIFIED_SUFFIX,
    CatalogProblem,
    Manifest,
    key_segment,
    parse_backup_key,
    read_catalog,
)
from jobs.backup.series import SeriesLock, no_series_lock
from jobs.retention.policy import BackupRecord, Decision, RetentionPolicy, plan_retention
from railyard.core.errors import NotFoundError
from railyard.core.storage import IncompleteUpload, ObjectInfo, ObjectStore, StorageLocation

log = structlog.get_logger()

# Restore verification writes ``<dump key>.verified.json`` with ``"result": "passed"`` beside a backup.

VERIFIED_PASSED = "passed"
# A dump without a manifest younger than this may be a backup still being committed.
ORPHAN_MIN_AGE = timedelta(hours=24)
# An incomplete upload is aborted only when both its key's own stamp and the server's Initiated
# time are older than this (servers report odd Initiated times: moto says 2010), and never
# while the backup's lock is held.
INCOMPLETE_UPLOAD_MIN_AGE = timedelta(hours=24)

# Roles and tablespaces saved by whole-server backups (jobs.backup.dump.backup_globals).
_GLOBALS_KEY = re.compile(
    r"^_globals/\d{4}/\d{2}/\d{2}/(?P<host>[^/]+)-globals-(?P<stamp>\d{8}T\d{6}Z)(?:-[0-9a-f]{8})?\.sql\.zst(?:\.age)?$"
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
    problems: list[CatalogProblem] = field(default_factory=list)  # manifests not used: never acted on
    uploads_left: list[tuple[IncompleteUpload, str]] = field(default_factory=list)  # (upload, why it stays)
    # Objects the plan would delete that object lock still protects: key -> retention date.
    locked: dict[str, datetime] = field(default_factory=dict)

    @property
    def unreadable(self) -> list[str]:
        return [p.key for p in self.problems]

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
                "series": d.backup.database,
                "taken_at": d.backup.taken_at.isoformat(),
                "key": d.backup.key,
                "manifest_key": d.backup.key + MANIFEST_SUFFIX,
            }
            if d.keep:
                entry["reasons"] = list(d.reasons)
            if d.backup.key in self.locked:
                entry["locked_until"] = self.locked[d.backup.key].isoformat()
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
            "invalid": [p.as_dict() for p in self.problems if p.kind == "invalid"],
            "foreign": [p.as_dict() for p in self.problems if p.kind == "foreign"],
            "incomplete_uploads_left": [
                {"key": u.key, "upload_id": u.upload_id, "initiated": u.initiated.isoformat(), "reason": why}
                for u, why in self.uploads_left
            ],
            "globals_delete": [
                {"key": g.key, "size": g.size, "modified": g.modified.isoformat()} for g in self.stale_globals
            ],
            "locked": [{"key": key, "locked_until": until.isoformat()} for key, until in self.locked.items()],
        }


def prune(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str,
    policy: RetentionPolicy,
    now: datetime,
    dry_run: bool = False,
    series_lock: SeriesLock = no_series_lock,
) -> PruneReport:
    """Plan retention for ``environment``'s backups and, unless ``dry_run``, carry it out.

    Only usable backups (see :func:`jobs.backup.catalog.read_catalog`) are planned; every manifest
    that is not used is reported and left alone, and so is its dump.
    """
    report = PruneReport(environment=environment, location=str(location), policy=policy.describe(), dry_run=dry_run)
    prefix = location.key(key_segment(environment)) + "/"
    listing = {info.key: info for info in store.list(prefix)}
    catalog = read_catalog(store, location, environment=environment, listing=listing)
    for problem in catalog.problems:
        log.warning("manifest_not_used", kind=problem.kind, key=problem.key, reason=problem.reason)
    report.problems = catalog.problems
    records = [_record(m, location) for m in catalog.backups]
    records = _mark_newest_verified(store, records, listing)
    report.decisions = _spare_locked(store, plan_retention(records, policy, now), listing, now, report.locked)
    report.orphans = _unlocked(store, _orphans(location, listing, now), now, report.locked)
    report.stale_globals = _unlocked(store, _stale_globals(prefix, listing, report.kept), now, report.locked)
    stale_uploads = []
    for upload in store.list_incomplete_uploads(prefix):
        if parse_backup_key(location, upload.key) is None:
            continue  # not a backup's upload: not ours to judge
        why = _upload_kept(location, upload, now)
        if why:
            report.uploads_left.append((upload, why))
        else:
            stale_uploads.append(upload)
    log.info(
        "prune_planned",
        environment=environment,
        backups=len(report.decisions),
        keep=len(report.kept),
        delete=len(report.deleted),
        orphans=len(report.orphans),
        incomplete_uploads=len(stale_uploads),
        stale_globals=len(report.stale_globals),
        not_used=len(report.problems),
        locked=len(report.locked),
        dry_run=dry_run,
    )
    if dry_run:
        report.incomplete_uploads = stale_uploads
        return report

    for decision in report.deleted:
        _delete_backup(store, decision.backup.key, listing)
        log.info("backup_deleted", id=decision.backup.id, database=decision.backup.database, key=decision.backup.key)
    for orphan in report.orphans:
        store.delete(orphan.key)
        log.info("orphan_deleted", key=orphan.key, size=orphan.size)
    for upload in stale_uploads:
        _abort_unless_running(store, location, upload, series_lock, report)
    for stale in report.stale_globals:
        store.delete(stale.key)
        log.info("globals_deleted", key=stale.key)
    log.info("prune_finished", environment=environment, deleted=len(report.deleted), orphans=len(report.orphans))
    return report


def _locked_until(store: ObjectStore, keys: list[str], now: datetime) -> datetime | None:
    """The latest retention date among ``keys`` still in the future, or None when none is locked."""
    dates = [until for key in keys if (until := store.locked_until(key)) is not None and until > now]
    return max(dates, default=None)


def _spare_locked(
    store: ObjectStore,
    decisions: list[Decision],
    listing: dict[str, ObjectInfo],
    now: datetime,
    locked: dict[str, datetime],
) -> list[Decision]:
    """The plan, with every backup it deletes whose objects are still locked kept instead.

    Prune never asks to delete a locked object; a later run deletes the backup once the
    lock has expired, if the policy still says so.
    """
    spared = []
    for decision in decisions:
        if not decision.keep:
            key = decision.backup.key
            keys = [key + MANIFEST_SUFFIX, key, *([key + VERIFIED_SUFFIX] if key + VERIFIED_SUFFIX in listing else [])]
            until = _locked_until(store, keys, now)
            if until is not None:
                locked[key] = until
                decision = replace(decision, reasons=(f"locked until {until.isoformat()}",))
                log.info("backup_kept_locked", id=decision.backup.id, key=key, locked_until=until.isoformat())
        spared.append(decision)
    return spared


def _unlocked(
    store: ObjectStore, found: list[ObjectInfo], now: datetime, locked: dict[str, datetime]
) -> list[ObjectInfo]:
    """The objects of ``found`` no lock protects; the others are recorded in ``locked``."""
    free = []
    for info in found:
        until = _locked_until(store, [info.key], now)
        if until is None:
            free.append(info)
        else:
            locked[info.key] = until
    return free


def _record(manifest: Manifest, location: StorageLocation) -> BackupRecord:
    """The planner's view of a usable backup (whose manifest describes the place it was read from)."""
    parsed = parse_backup_key(location, manifest.key)
    assert parsed is not None  # read_catalog uses only manifests found at the key they record
    return BackupRecord(
        id=parsed.id,
        environment=parsed.environment,
        database=parsed.series,
        taken_at=parsed.taken_at,
        key=parsed.key,
    )


def _upload_kept(location: StorageLocation, upload: IncompleteUpload, now: datetime) -> str | None:
    """Why an incomplete upload must stay, or None when it is old enough to abort (lock permitting)."""
    parsed = parse_backup_key(location, upload.key)
    assert parsed is not None
    if parsed.taken_at > now - INCOMPLETE_UPLOAD_MIN_AGE:
        return "its key's own time is less than 24 h ago"
    if upload.initiated > now - INCOMPLETE_UPLOAD_MIN_AGE:
        return "the server says it was started less than 24 h ago"
    return None


def _abort_unless_running(
    store: ObjectStore,
    location: StorageLocation,
    upload: IncompleteUpload,
    series_lock: SeriesLock,
    report: PruneReport,
) -> None:
    parsed = parse_backup_key(location, upload.key)
    assert parsed is not None
    with series_lock(parsed.series) as free:
        if free is False:
            report.uploads_left.append((upload, "a backup of its series is running (its lock is held)"))
            log.info("incomplete_upload_left", key=upload.key, reason="backup running")
            return
        store.abort_incomplete_upload(upload)
    report.incomplete_uploads.append(upload)
    log.info("incomplete_upload_aborted", key=upload.key)


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
