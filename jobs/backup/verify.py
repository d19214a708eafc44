"""Restore verification: restore a backup into a scratch database and check it.

Each verification restores the backup (checking its sha256 end to end), compares every
table's row count with the counts recorded in the manifest, runs ANALYZE, and drops the
scratch database whatever happens. The outcome is recorded beside the backup in an
immutable ``<dump key>.verified.json`` marker. Scratch databases left by a killed
verification are dropped by the next one once they are a day old.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg import sql

from jobs.backup.catalog import VERIFIED_SUFFIX, Manifest, read_catalog
from jobs.backup.destinations import PRIMARY, Found, destinations, find_everywhere
from jobs.backup.encryption import EncryptionConfig
from jobs.backup.restore import DumpUnreadableError, restore_manifest
from railyard.core.alerts import Alert, send_alert
from railyard.core.conninfo import conninfo_problems
from railyard.core.errors import ConfigError, LockBusyError, PermanentError, RailyardError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore, StorageLocation

log = structlog.get_logger()

SCRATCH_PREFIX = "railyard_verify_"
SCRATCH_COMMENT = "railyard verify started "
LEFTOVER_AFTER = timedelta(days=1)
MAX_IDENTIFIER = 63


class VerificationFailedError(PermanentError):
    """A backup did not restore to what its manifest promised; the alert has been sent already."""

    alert_sent = True


@dataclass(frozen=True)
class Mismatch:
    table: str
    expected: int | None
    actual: int | None


@dataclass(frozen=True)
class Verification:
    backup_id: str
    database: str
    key: str
    verified_at: str
    duration_s: float
    result: str  # "passed" or "failed"
    tables_compared: int
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    series: str | None = None  # the backup's series; markers written before series lack it
    source: str = PRIMARY  # the destination whose dump was restored: "primary" or "copy"

    @property
    def passed(self) -> bool:
        return self.result == "passed"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def scratch_name(backup_id: str) -> str:
    """``railyard_verify_<id>`` as a safe identifier of at most 63 bytes."""
    name = SCRATCH_PREFIX + re.sub(r"[^a-z0-9_]", "_", backup_id.lower())
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.sha256(backup_id.encode()).hexdigest()[:8]
        name = name[: MAX_IDENTIFIER - 9] + "_" + digest
    return name


def drop_leftovers(admin: psycopg.Connection[Any], now: datetime) -> list[str]:
    """Drop scratch databases whose verification started more than a day ago."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE %s",
        (SCRATCH_PREFIX.replace("_", r"\_") + "%",),
    ).fetchall()
    dropped = []
    for name, comment in rows:
        started = _started_at(comment)
        if started is not None and now - started > LEFTOVER_AFTER:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            log.warning("verify_leftover_dropped", database=name, started_at=started.isoformat())
            dropped.append(name)
    return dropped


def _started_at(comment: str | None) -> datetime | None:
    if not comment or not comment.startswith(SCRATCH_COMMENT):
        return None
    try:
        return datetime.fromisoformat(comment[len(SCRATCH_COMMENT) :])
    except ValueError:
        return None


def compare_counts(expected: dict[str, int], conn: psycopg.Connection[Any]) -> list[Mismatch]:
    mismatches = []
    for table, count in sorted(expected.items()):
        schema, _, name = table.partition(".")
        try:
            row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, name))).fetchone()
            actual = int(row[0]) if row else None
        except psycopg.errors.UndefinedTable:
            actual = None
        if actual != count:
            mismatches.append(Mismatch(table, count, actual))
    return mismatches


def verify_manifest(
    store: ObjectStore,
    manifest: Manifest,
    server: PgTarget,
    *,
    identity: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Verification:
    """Restore ``manifest`` into a scratch database on ``server`` and check it; record the outcome."""
    return _verify(store, manifest, server, identity=identity, clock=clock)[0]


def _verify(
    store: ObjectStore,
    manifest: Manifest,
    server: PgTarget,
    *,
    identity: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    source: str = PRIMARY,
) -> tuple[Verification, bool]:
    """The verification, and whether it failed because the dump itself could not be read."""
    unreadable = False
    started = clock()
    t0 = time.monotonic()
    name = scratch_name(manifest.id)
    scratch = server.with_dbname(name)
    mismatches: list[Mismatch] = []
    error: str | None = None
    log.info("verify_started", id=manifest.id, scratch_database=name)
    with server.connect(autocommit=True) as admin:
        drop_leftovers(admin, started)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase as exc:
            raise LockBusyError(f"backup {manifest.id} is being verified already (database {name} exists)") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PermanentError(
                f"the user of VERIFY_DATABASE_URL may not create databases ({exc}); grant CREATEDB or point "
                "VERIFY_DATABASE_URL at a server where it may"
            ) from exc
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(SCRATCH_COMMENT + started.isoformat())
            )
        )
        try:
            restore_manifest(store, manifest, scratch, identity=identity)
            with scratch.connect(autocommit=True) as conn:
                mismatches = compare_counts(manifest.row_counts or {}, conn)
                conn.execute("ANALYZE")
        except PermanentError as exc:
            error = str(exc)
            unreadable = isinstance(exc, DumpUnreadableError)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    result = Verification(
        backup_id=manifest.id,
        database=manifest.database,
        series=manifest.series_name,
        key=manifest.key,
        verified_at=started.isoformat(),
        duration_s=round(time.monotonic() - t0, 3),
        result="failed" if error or mismatches else "passed",
        tables_compared=len(manifest.row_counts or {}),
        mismatches=mismatches,
        error=error,
        source=source,
    )
    _record(store, manifest, result)
    event = log.info if result.passed else log.error
    event(
        "verify_completed",
        id=manifest.id,
        result=result.result,
        tables_compared=result.tables_compared,
        mismatches=len(mismatches),
        duration_s=result.duration_s,
        error=error,
        destination=source,
    )
    return result, unreadable


def _record(store: ObjectStore, manifest: Manifest, result: Verification) -> None:
    try:
        store.put_bytes(manifest.key + VERIFIED_SUFFIX, result.to_json(), if_absent=True)
    except PermanentError:
        log.info("verify_marker_exists", id=manifest.id, result=result.result)


def read_verifications(store: ObjectStore, location: StorageLocation) -> dict[str, dict[str, Any]]:
    """``{dump key: marker}`` for every well-formed verification marker under ``location``.

    A marker is used only when it is an object with a ``result`` and a ``verified_at`` and
    records the dump key it sits beside; others are logged and ignored.
    """
    markers = {}
    prefix = location.key()
    for info in store.list(prefix + "/" if prefix else ""):
        if info.key.endswith(VERIFIED_SUFFIX):
            dump_key = info.key[: -len(VERIFIED_SUFFIX)]
            try:
                marker = json.loads(store.get_bytes(info.key))
            except (ValueError, RecursionError, RailyardError) as exc:
                log.warning("verify_marker_unreadable", key=info.key, error=str(exc))
                continue
            if (
                isinstance(marker, dict)
                and marker.get("result") in ("passed", "failed")
                and isinstance(marker.get("verified_at"), str)
                and marker.get("key") == dump_key
            ):
                markers[dump_key] = marker
            else:
                log.warning("verify_marker_unreadable", key=info.key, error="not a marker for the dump beside it")
    return markers


def verify_server(settings: Settings, environ: Mapping[str, str] | None = None) -> PgTarget:
    """Where scratch databases are created: VERIFY_DATABASE_URL's server, else DATABASE_URL's."""
    env = os.environ if environ is None else environ
    url = env.get("VERIFY_DATABASE_URL", "").strip()
    problems = conninfo_problems("VERIFY_DATABASE_URL", url) if url else []
    if problems:
        raise ConfigError(
            [*problems, "VERIFY_DATABASE_URL names the server for scratch databases; unset it to use DATABASE_URL"]
        )
    return PgTarget(url or settings.database_url)


def verify_backups(settings: Settings, backup_id: str | None = None, database: str | None = None) -> list[Verification]:
    """Verify one backup, or the newest backup of each database when no id is given.

    A backup whose primary dump is missing or fails its checksum is verified from the copy.
    """
    server = verify_server(settings)
    if backup_id:
        chosen = [find_everywhere(settings, backup_id, database=database)]
    else:
        chosen = newest_everywhere(settings, database)
        if not chosen:
            raise PermanentError(
                f"no backups to verify at {settings.backup_storage_url} for environment {settings.environment!r}"
            )
    encryption = EncryptionConfig.from_env()
    results = [_verify_first_readable(places, server, encryption.identity) for places in chosen]
    for r in results:
        if not r.passed:
            summary = f"verification of backup {r.backup_id} failed: {describe_failures([r])}"
            send_alert(Alert("verification_failed", summary, settings.environment, asdict(r)))
    return results


def newest_everywhere(settings: Settings, database: str | None) -> list[list[Found]]:
    """The newest backup of each series across the destinations, each with every destination that has it."""
    now = datetime.now(UTC)
    newest: dict[str, list[Found]] = {}
    errors: list[RailyardError] = []
    places_to_read = destinations(settings)
    for destination in places_to_read:
        try:
            catalog = read_catalog(
                destination.store, destination.location, environment=settings.environment, series=database
            )
        except RailyardError as exc:
            log.warning("destination_unreadable", destination=destination.name, reason=str(exc))
            errors.append(exc)
            if len(errors) == len(places_to_read):
                raise errors[0] from exc
            continue
        for name in catalog.series_names():
            manifest = catalog.newest(name, now)
            if manifest is None:
                continue
            places = newest.setdefault(name, [])
            best = places[0].manifest if places else None
            if best is None or (manifest.finished, manifest.id) > (best.finished, best.id):
                newest[name] = [Found(destination, manifest)]
            elif manifest.id == best.id:
                places.append(Found(destination, manifest))
    return [newest[name] for name in sorted(newest)]


def _verify_first_readable(places: list[Found], server: PgTarget, identity: str | None) -> Verification:
    """Verify from the first destination whose dump can be read; the last one's outcome stands."""
    for attempt, place in enumerate(places):
        if place.where != PRIMARY:
            log.warning("verify_from_copy", id=place.manifest.id, destination=place.where)
        result, unreadable = _verify(
            place.destination.store, place.manifest, server, identity=identity, source=place.where
        )
        if not (unreadable and attempt + 1 < len(places)):
            return result
        log.warning("verify_source_failed", id=place.manifest.id, destination=place.where, error=result.error)
    raise AssertionError("every backup is found in at least one destination")


def describe_failures(results: list[Verification]) -> str:
    parts = []
    for r in results:
        if r.passed:
            continue
        if r.error:
            parts.append(f"{r.backup_id}: {r.error}")
        for m in r.mismatches:
            parts.append(f"{r.backup_id}: table {m.table} has {m.actual} rows, the manifest says {m.expected}")
    return "; ".join(parts)


def verify_backup(backup_id: str | None = None, database: str | None = None) -> dict[str, Any]:
    """RQ job ``jobs.verify.verify_backup``: a failed verification fails the job (alert-worthy)."""
    results = verify_backups(Settings.from_env(), backup_id, database)
    failed = [r for r in results if not r.passed]
    if failed:
        raise VerificationFailedError(f"verification failed: {describe_failures(failed)}")
    return {"verified": [asdict(r) for r in results]}
