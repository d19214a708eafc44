"""The backup job: pg_dump streamed through zstd into object storage, with a manifest.

    pg_dump -Fc -Z0 --snapshot=S  ->  zstd (multi-threaded)  ->  sha256  ->  multipart upload
                                  +-> archive reader: structure checked, rows counted per table

Nothing touches local disk and memory is bounded by the upload's parts. The upload is
completed only after pg_dump exited 0 and every byte was read; on any failure it is
aborted and no backup appears. The manifest, written last, is the commit marker.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import psycopg
import structlog
import zstandard

from jobs.backup import copy
from jobs.backup.catalog import (
    ENCRYPTED_SUFFIX,
    MANIFEST_SUFFIX,
    BackupKey,
    Manifest,
    backup_key,
    key_segment,
    newest_usable,
)
from jobs.backup.config import BackupConfig, BackupOptions
from jobs.backup.dump_archive import ArchiveReader
from jobs.backup.encryption import EncryptionConfig, Encryptor
from jobs.backup.rowcounts import estimate_rows
from jobs.backup.series import BACKUP_LOCK_KEY, Source, resolve_source, server_database, url_source
from railyard import __version__
from railyard.core import alerts, childproc
from railyard.core.conninfo import password_forms
from railyard.core.databases import list_databases
from railyard.core.errors import (
    LockBusyError,
    ObjectExistsError,
    PermanentError,
    RailyardError,
    RetryableError,
)
from railyard.core.pgtools import PgTarget, PgTool, find_tool, server_major
from railyard.core.redact import redactor
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, Upload, choose_part_size, open_backup_store

log = structlog.get_logger()

READ_CHUNK_BYTES = 1024 * 1024
PROGRESS_INTERVAL_S = 1.0
# zstd's default job size keeps ~60 MB of buffers with 2 threads; 2 MiB jobs cost 0.2% in size (bench/README.md).
ZSTD_JOB_SIZE_BYTES = 2 * 1024 * 1024
# Advisory lock key (two int4s) held on the source database for the whole backup.
LOCK_KEY = BACKUP_LOCK_KEY
# Keys tried, a second apart, when other writers completed the same key first.
KEY_ATTEMPTS = 10

ProgressCallback = Callable[[int, int, float], None]
# (bytes pg_dump wrote, bytes stored, seconds, pg_database_size: what the first approaches)
BackupProgressCallback = Callable[[int, int, float, int], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def backup_database(
    settings: Settings,
    *,
    database_url: str | None = None,
    source: Source | None = None,
    options: BackupOptions | None = None,
    tuning: BackupConfig | None = None,
    encryption: EncryptionConfig | None = None,
    on_progress: BackupProgressCallback | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Manifest:
    """Back up one database now and return its manifest.

    ``source`` says which series the backup joins; without it, ``database_url`` (its series
    is its database name) or DATABASE_URL. Raises LockBusyError when another backup of the
    same database is running.
    """
    options = options or BackupOptions()
    tuning = tuning or BackupConfig.from_env()
    encryption = encryption or EncryptionConfig.from_env()
    if source is None:
        source = url_source(database_url) if database_url else resolve_source(settings, None)
    return _Backup(settings, source, options, tuning, encryption, clock).take(on_progress)


@dataclass(frozen=True)
class _Server:
    """The source's server as the backup found it, under the backup's lock."""

    pg_dump: PgTool
    version: str
    system_identifier: str | None


@dataclass(frozen=True)
class _Dumped:
    """What the dump wrote, and where its upload was completed."""

    key: BackupKey  # a later key than the one reserved when another writer completed that one first
    sha256: str  # of the bytes stored
    raw_bytes: int  # what pg_dump wrote
    stored_bytes: int
    row_counts: dict[str, int] | None
    archive_checked: bool


class _Backup:
    """One backup of one database, taken in the steps :meth:`take` lists."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        options: BackupOptions,
        tuning: BackupConfig,
        encryption: EncryptionConfig,
        clock: Callable[[], datetime],
    ):
        self.settings = settings
        self.source = source
        self.target = source.target
        self.options = options
        self.tuning = tuning
        self.encryption = encryption
        self.clock = clock
        self.store, self.location = open_backup_store(settings, locked=True)

    def take(self, on_progress: BackupProgressCallback | None) -> Manifest:
        self.store.check()  # a missing bucket or read-only directory fails before pg_dump starts
        with self.target.connect(autocommit=True) as conn:
            server = self._lock_source(conn)
            previous = self._previous_backup()
            database_bytes, snapshot = _export_snapshot(conn)
            started = self.clock()
            key = self._free_key(started)
            part_size, concurrency = self._upload_shape(database_bytes)
            self._log_started(server, key, part_size, concurrency, database_bytes)
            t0 = time.monotonic()
            report = None if on_progress is None else _with_total(on_progress, database_bytes)
            dumped = self._dump(conn, server, snapshot, key, part_size, concurrency, report)
            conn.execute("COMMIT")
            duration = time.monotonic() - t0
        finished = max(self.clock(), started)  # a clock stepped back must not make a backup end before it began
        manifest = self._manifest(server, dumped, started, finished, duration)
        self._publish(manifest, previous)
        self._log_completed(manifest, duration)
        return manifest

    def _lock_source(self, conn: Any) -> _Server:
        """Find a pg_dump for the server and take the database's backup lock (LockBusyError when held)."""
        major, server_version = server_major(conn)
        pg_dump = find_tool("pg_dump", major, ssl_mode=self.target.ssl_mode)
        locked = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY).fetchone()
        if not locked or not locked[0]:
            raise LockBusyError(f"a backup of database {self.target.dbname!r} is already running; not starting another")
        return _Server(pg_dump, server_version, server_identity(conn))

    def _previous_backup(self) -> Manifest | None:
        """The series' newest backup, to tell when its server changed."""
        return newest_usable(
            self.store, self.location, environment=self.settings.environment, series=self.source.series
        )

    def _free_key(self, started: datetime) -> BackupKey:
        """The key for a backup started at ``started`` that no object has yet."""
        # Where the store cannot refuse to overwrite, the key carries a random token no other writer picks.
        token = "" if self.store.refuses_overwrite() else secrets.token_hex(4)
        key = backup_key(
            self.location,
            self.settings.environment,
            self.source.series,
            started,
            encrypted=self.encryption.enabled,
            token=token,
        )
        while self.store.head(key.key) is not None or self.store.head(key.manifest_key) is not None:
            # Taken in the same second: the key moves a second on; started_at stays the real start.
            key = _next_key(self.location, key)
        return key

    def _upload_shape(self, database_bytes: int) -> tuple[int, int]:
        """(part size, parts uploaded at once) for a database this large, warning when over the memory budget."""
        part_size = self.tuning.part_size or choose_part_size(database_bytes)
        concurrency = self.tuning.concurrency_for(part_size)
        if part_size * (concurrency + 1) > self.tuning.upload_memory:
            log.warning(
                "upload_memory_over_budget",
                needed_bytes=part_size * (concurrency + 1),
                budget_bytes=self.tuning.upload_memory,
                hint="the database needs parts this large to fit in 10,000; raise BACKUP_UPLOAD_MEMORY_MB",
            )
        return part_size, concurrency

    def _log_started(
        self, server: _Server, key: BackupKey, part_size: int, concurrency: int, database_bytes: int
    ) -> None:
        log.info(
            "backup_started",
            database=self.target.dbname,
            series=self.source.series,
            source=self.source.source,
            host=self.target.host,
            key=key.key,
            server_version=server.version,
            pg_dump_version=server.pg_dump.version,
            part_size=part_size,
            upload_concurrency=concurrency,
            database_bytes=database_bytes,
        )

    def _dump(
        self,
        conn: Any,
        server: _Server,
        snapshot: str,
        key: BackupKey,
        part_size: int,
        concurrency: int,
        on_progress: ProgressCallback | None,
    ) -> _Dumped:
        """Stream pg_dump, in the exported snapshot, into a create-only upload and complete it."""
        # Exact counts come from the dump stream itself (no query, no second scan); estimates
        # from the planner's statistics, in the dump's snapshot.
        reader = ArchiveReader() if self.tuning.row_counts == "exact" else None
        counts = estimate_rows(conn, self.options) if self.tuning.row_counts == "estimate" else None
        with self.store.open_upload(key.key, part_size=part_size, concurrency=concurrency, if_absent=True) as upload:
            stream = _DumpStream(pg_dump_argv(server.pg_dump, self.target, snapshot, self.options), self.target)
            try:
                digest, raw_bytes = stream.pump(
                    upload.write, self.tuning, self.encryption.recipients, on_progress, reader.feed if reader else None
                )
            finally:
                stream.close()
            if reader:
                counts = reader.finish().table_counts()
            key = _complete_without_overwriting(upload, key, self.location)
        return _Dumped(key, digest, raw_bytes, upload.bytes_written, counts, archive_checked=reader is not None)

    def _manifest(
        self, server: _Server, dumped: _Dumped, started: datetime, finished: datetime, duration: float
    ) -> Manifest:
        encryption = self.encryption
        return Manifest(
            id=dumped.key.id,
            key=dumped.key.key,
            database=self.target.dbname,
            environment=self.settings.environment,
            host=self.target.host,
            server_version=server.version,
            pg_dump_version=server.pg_dump.version,
            format="custom",
            compression=f"zstd-{self.tuning.zstd_level}",
            size=dumped.stored_bytes,
            raw_size=dumped.raw_bytes,
            sha256=dumped.sha256,
            started_at=started.isoformat(),
            finished_at=finished.isoformat(),
            duration_s=round(duration, 3),
            railyard_version=__version__,
            row_counts=dumped.row_counts,
            row_counts_mode=self.tuning.row_counts,
            archive_checked=dumped.archive_checked,
            options=self.options.as_dict(),
            encryption={"format": "age", "recipients": list(encryption.recipients)} if encryption.enabled else None,
            series=self.source.series,
            source=self.source.source,
            system_identifier=server.system_identifier,
        )

    def _publish(self, manifest: Manifest, previous: Manifest | None) -> None:
        """Write the manifest (the commit marker), then enqueue the copy and say when the server changed."""
        self.store.put_bytes(manifest.key + MANIFEST_SUFFIX, manifest.to_json(), if_absent=True)
        copy.enqueue_copy(self.settings, manifest)
        if previous is not None and server_changed(previous, manifest):
            _alert_server_changed(self.settings, previous, manifest)

    def _log_completed(self, manifest: Manifest, duration: float) -> None:
        log.info(
            "backup_completed",
            id=manifest.id,
            database=manifest.database,
            key=manifest.key,
            bytes=manifest.size,
            raw_bytes=manifest.raw_size,
            duration_s=manifest.duration_s,
            mb_per_s=round(manifest.raw_size / 1e6 / duration, 1) if duration > 0 else None,
            location=self.store.location(manifest.key),
        )


def _export_snapshot(conn: Any) -> tuple[int, str]:
    """(the database's size, the name of a repeatable-read snapshot pg_dump will read) in a transaction left open."""
    size_row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    database_bytes = int(str(size_row[0])) if size_row else 0
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    snapshot_row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    return database_bytes, str(snapshot_row[0]) if snapshot_row else ""


def _next_key(location: StorageLocation, key: BackupKey) -> BackupKey:
    """The key a second later: keys have one-second resolution, and a taken key is never overwritten."""
    return backup_key(
        location,
        key.environment,
        key.series,
        key.taken_at + timedelta(seconds=1),
        encrypted=key.key.endswith(ENCRYPTED_SUFFIX),
        token=key.token,
    )


def _complete_without_overwriting(upload: Upload, key: BackupKey, location: StorageLocation) -> BackupKey:
    """Complete ``upload`` under ``key``, or under the next free key when another writer got there first."""
    for _ in range(KEY_ATTEMPTS):
        try:
            upload.complete()
            return key
        except ObjectExistsError as exc:
            taken = key
            key = _next_key(location, key)
            if not upload.retarget(key.key):
                raise RetryableError(
                    f"another writer completed {taken.key!r} first; nothing was overwritten and this backup "
                    "will be taken again under a new key"
                ) from exc
            log.warning("backup_key_taken", key=taken.key, next_key=key.key)
    raise RetryableError(f"{KEY_ATTEMPTS} keys in a row were taken by other writers; the backup will be retried")


def server_identity(conn: Any) -> str | None:
    """The server's ``system_identifier`` (unique per cluster), or None when this user may not read it."""
    try:
        row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    except psycopg.Error as exc:
        log.info("system_identifier_unreadable", reason=" ".join(str(exc).split()))
        return None
    return str(row[0]) if row and row[0] is not None else None


def server_changed(previous: Manifest, current: Manifest) -> bool:
    """Whether ``current`` came from another server than the series' previous backup.

    The system identifiers decide when both are known; otherwise the hosts do (a host
    spelled another way, such as a public and a private name, then counts as a change once).
    """
    if previous.system_identifier and current.system_identifier:
        return previous.system_identifier != current.system_identifier
    return previous.host != current.host


def _alert_server_changed(settings: Settings, previous: Manifest, current: Manifest) -> None:
    details = {
        "series": current.series_name,
        "source": current.source,
        "previous_id": previous.id,
        "previous_host": previous.host,
        "previous_system_identifier": previous.system_identifier,
        "id": current.id,
        "host": current.host,
        "system_identifier": current.system_identifier,
    }
    log.warning("series_server_changed", **details)
    summary = (
        f"series {current.series_name!r} now comes from another server ({previous.host} -> {current.host}); "
        f"backup {current.id} was taken, check that {current.source} points where it should"
    )
    alerts.send_alert(alerts.Alert("series_server_changed", summary, settings.environment, details))


def _with_total(on_progress: BackupProgressCallback, total: int) -> ProgressCallback:
    return lambda raw, stored, elapsed: on_progress(raw, stored, elapsed, total)


def pg_dump_argv(tool: PgTool, target: PgTarget, snapshot: str, options: BackupOptions) -> list[str]:
    return [
        tool.path,
        "--format=custom",
        "--compress=0",
        f"--snapshot={snapshot}",
        "--no-password",
        *options.pg_dump_args(),
        f"--dbname={target.argv_url()}",
    ]


class _DumpStream:
    """A running pg_dump (or pg_dumpall) whose stdout is compressed, hashed and handed to a sink."""

    def __init__(self, argv: list[str], target: PgTarget):
        self._target = target
        self._child = childproc.start(argv, env=target.child_env(), stdout=childproc.PIPE)

    def pump(
        self,
        sink: Callable[[bytes], None],
        tuning: BackupConfig,
        recipients: tuple[str, ...],
        on_progress: ProgressCallback | None,
        on_raw: Callable[[bytes], None] | None = None,
    ) -> tuple[str, int]:
        """Stream everything pg_dump writes into ``sink``, compressed then (with recipients)
        encrypted; return (sha256 of the bytes given to ``sink``, bytes pg_dump wrote).
        ``on_raw`` sees each chunk pg_dump wrote, before compression."""
        stdout: IO[bytes] | None = self._child.stdout
        assert stdout is not None
        params = zstandard.ZstdCompressionParameters.from_level(
            tuning.zstd_level,
            threads=tuning.zstd_threads,
            job_size=ZSTD_JOB_SIZE_BYTES if tuning.zstd_threads else 0,
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        zobj = compressor.compressobj()
        digest = hashlib.sha256()
        raw = stored = 0
        t0 = last = time.monotonic()

        def emit(data: bytes) -> None:
            nonlocal stored
            if data:
                digest.update(data)
                sink(data)
                stored += len(data)

        encryptor = Encryptor(recipients, emit) if recipients else None
        write = encryptor.write if encryptor else emit
        try:
            while chunk := stdout.read(READ_CHUNK_BYTES):
                raw += len(chunk)
                if on_raw:
                    on_raw(chunk)
                write(zobj.compress(chunk))
                if on_progress and time.monotonic() - last >= PROGRESS_INTERVAL_S:
                    last = time.monotonic()
                    on_progress(raw, stored, last - t0)
            returncode = self._child.wait()
            if returncode != 0:
                raise self._failure(returncode)
            write(zobj.flush())
            if encryptor:
                encryptor.close()
        finally:
            if encryptor:
                encryptor.abort()
        if on_progress:
            on_progress(raw, stored, time.monotonic() - t0)
        return digest.hexdigest(), raw

    def _failure(self, returncode: int) -> Exception:
        detail = redactor(extra=password_forms(self._target.url))(self._child.error_line())
        name = self._child.name
        if returncode < 0:
            return RetryableError(f"{name} was killed by signal {-returncode}; nothing was stored")
        if "permission denied" in detail:
            return PermanentError(f"{name} failed: {detail}; grant the backup user read access or exclude the table")
        return RetryableError(f"{name} exited with code {returncode}: {detail or 'no message'}; nothing was stored")

    def close(self) -> None:
        """Make sure pg_dump and anything it started are gone, whatever happened (timeout, abort, error)."""
        self._child.close()


def backup_globals(
    settings: Settings, server: PgTarget, *, tuning: BackupConfig, encryption: EncryptionConfig
) -> str | None:
    """Roles and tablespaces (``pg_dumpall --globals-only --no-role-passwords``) beside the databases.

    Returns the stored key, or None with a warning when the user may not read them.
    """
    store, location = open_backup_store(settings, locked=True)
    with server.connect(autocommit=True) as conn:
        major, _ = server_major(conn)
    tool = find_tool("pg_dumpall", major, ssl_mode=server.ssl_mode)
    host = key_segment(server.host.replace(":", "_"))
    suffix = ".sql.zst" + (".age" if encryption.enabled else "")
    token = "" if store.refuses_overwrite() else "-" + secrets.token_hex(4)

    def globals_key(when: datetime) -> str:
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        folder = location.key(key_segment(settings.environment), "_globals", stamp[:4], stamp[4:6], stamp[6:8])
        return f"{folder}/{host}-globals-{stamp}{token}{suffix}"

    when = utcnow().replace(microsecond=0)
    key = globals_key(when)
    argv = [tool.path, "--globals-only", "--no-role-passwords", "--no-password", f"--dbname={server.argv_url()}"]
    try:
        with store.open_upload(key, if_absent=True) as upload:
            stream = _DumpStream(argv, server)
            try:
                stream.pump(upload.write, tuning, encryption.recipients, None)
            finally:
                stream.close()
            for _ in range(KEY_ATTEMPTS):
                try:
                    upload.complete()
                    break
                except ObjectExistsError:
                    when += timedelta(seconds=1)
                    key = globals_key(when)
                    if not upload.retarget(key):
                        raise
    except RailyardError as exc:
        log.warning("globals_skipped", host=server.host, reason=str(exc))
        return None
    log.info("globals_stored", host=server.host, key=key)
    return key


def backup_all_databases(
    settings: Settings,
    server: Source | PgTarget,
    *,
    options: BackupOptions | None = None,
    tuning: BackupConfig | None = None,
    encryption: EncryptionConfig | None = None,
) -> tuple[list[Manifest], str | None]:
    """Back up every connectable, non-template database on ``server``, each with its own manifest,
    plus the server's globals. Raises RetryableError naming the databases that failed.

    Each database is its own series: the source's own database keeps the source's series,
    any other database ``D`` is ``{source series}.{D}``.
    """
    source = server if isinstance(server, Source) else url_source(server.url)
    tuning = tuning or BackupConfig.from_env()
    encryption = encryption or EncryptionConfig.from_env()
    manifests, failed = [], []
    for name in list_databases(source.target):
        try:
            manifests.append(
                backup_database(
                    settings,
                    source=server_database(source, name),
                    options=options,
                    tuning=tuning,
                    encryption=encryption,
                )
            )
        except LockBusyError as exc:
            log.warning("backup_skipped", database=name, reason=str(exc))
        except RailyardError as exc:
            log.error("backup_failed", database=name, error=str(exc))
            failed.append(f"{name} ({exc})")
    globals_key = backup_globals(settings, source.target, tuning=tuning, encryption=encryption)
    if failed:
        raise RetryableError(f"{len(failed)} of the server's databases were not backed up: {'; '.join(failed)}")
    return manifests, globals_key
