"""Restore: storage -> zstd -d -> pg_restore --single-transaction, checked end to end.

(pg_restore 17+ into a server before 17 goes through its script and psql: see restore_script.
A large archive into an empty target is restored with several jobs: see restore_plan.)

The sha256 of the stored bytes is compared with the manifest before pg_restore receives
the last of its input: the final decompressed bytes are held back until the hash is
known. On a mismatch pg_restore is killed, its single transaction rolls back, and the
target database is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
import zstandard

from jobs.backup import parallel_restore, restore_plan, restore_script
from jobs.backup.catalog import Manifest
from jobs.backup.destinations import PRIMARY, find_everywhere
from jobs.backup.encryption import EncryptionConfig, decrypt_chunks
from jobs.backup.production_guard import check_restore_target
from railyard.core import childproc
from railyard.core.conninfo import Conninfo, password_forms
from railyard.core.errors import NotFoundError, PermanentError, RetryableError
from railyard.core.pgtools import PgTarget, PgTool, find_tool, server_major
from railyard.core.redact import redactor
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore

log = structlog.get_logger()

HOLD_BACK_BYTES = 64 * 1024

ProgressCallback = Callable[[int, float], None]


class DumpUnreadableError(PermanentError):
    """The stored dump is missing, fails its checksum, or is corrupt or truncated: another copy may not be."""


@dataclass(frozen=True)
class RestoreResult:
    backup_id: str
    database: str
    target: str  # redacted URL
    bytes: int
    duration_s: float
    source: str = PRIMARY  # the destination it was read from: "primary" or "copy"


def restore_backup(
    settings: Settings,
    backup_id: str,
    target_url: str,
    *,
    database: str | None = None,
    force_production: bool = False,
    on_progress: ProgressCallback | None = None,
    jobs: int | None = None,
) -> RestoreResult:
    """Restore ``backup_id`` (or ``latest``) into ``target_url``; ``jobs`` overrides RESTORE_JOBS."""
    Conninfo.parse(target_url, "the restore target (RESTORE_TARGET_URL)")  # a clear error before anything connects
    target = PgTarget(target_url)
    check_restore_target(settings, target, force_production=force_production)
    found = find_everywhere(settings, backup_id, database=database)
    tuning = restore_plan.RestoreConfig.from_env(jobs=jobs)
    for attempt, place in enumerate(found):
        manifest = place.manifest
        identity = EncryptionConfig.from_env().identity if manifest.encryption else None
        if place.where != PRIMARY:
            log.warning("restore_from_copy", id=manifest.id, destination=place.where, key=manifest.key)
        try:
            result = restore_manifest(
                place.destination.store, manifest, target, identity=identity, on_progress=on_progress, tuning=tuning
            )
        except DumpUnreadableError as exc:
            if attempt + 1 == len(found):
                raise
            log.warning("restore_source_failed", id=manifest.id, destination=place.where, error=str(exc))
            continue
        return dataclasses.replace(result, source=place.where)
    raise AssertionError("find_everywhere returns at least one place")


def restore_manifest(
    store: ObjectStore,
    manifest: Manifest,
    target: PgTarget,
    *,
    identity: str | None = None,
    on_progress: ProgressCallback | None = None,
    tuning: restore_plan.RestoreConfig | None = None,
) -> RestoreResult:
    """Stream one backup into ``target``; the target is untouched unless every check passes."""
    tuning = tuning or restore_plan.RestoreConfig.from_env()
    if manifest.encryption and not identity:
        raise PermanentError(
            f"backup {manifest.id} is encrypted for {', '.join(manifest.encryption.get('recipients', []))}; "
            "set BACKUP_ENCRYPTION_IDENTITY or BACKUP_ENCRYPTION_IDENTITY_FILE to the matching age identity"
        )
    if manifest.format != "custom" or not manifest.compression.startswith("zstd"):
        raise PermanentError(
            f"backup {manifest.id} has format {manifest.format!r}/{manifest.compression!r}, which this version "
            "of Railyard cannot restore"
        )
    with target.connect(autocommit=True) as conn:
        major, _ = server_major(conn)
        empty = not parallel_restore.leftovers(conn)
    dump_major = int(manifest.pg_dump_version.split(".")[0])
    pg_restore = find_tool("pg_restore", max(major, dump_major), ssl_mode=target.ssl_mode)
    # A pg_restore newer than 16 sends a setting servers before 17 reject: go through its script and psql.
    psql = restore_script.psql_beside(pg_restore) if restore_script.needs_script(pg_restore, major) else None
    plan = restore_plan.choose(
        tuning,
        archive_bytes=manifest.raw_size,
        free_disk_bytes=shutil.disk_usage(tempfile.gettempdir()).free,
        target_empty=empty,
        via_script=psql is not None,
    )
    if plan.parallel:
        return _restore_parallel(store, manifest, target, pg_restore, plan, identity, on_progress)
    argv = [pg_restore.path, "--no-owner", "--no-privileges", "--clean", "--if-exists", "--single-transaction"]
    if psql is None:
        argv += ["--exit-on-error", "--no-password", f"--dbname={target.argv_url()}"]
    else:
        argv += ["--file=-"]
    t0 = _started(manifest, target, pg_restore, plan, via_psql=psql is not None)
    env = target.child_env()
    stored = 0
    runner_code = 0
    with contextlib.ExitStack() as children:
        # Entered first, left last: on any failure psql is killed before pg_restore, so it never
        # sees the end of a partial script.
        proc = children.enter_context(
            childproc.start(
                argv, env=env, stdin=childproc.PIPE, stdout=childproc.DEVNULL if psql is None else childproc.PIPE
            )
        )
        runner = relay = None
        if psql is not None:
            runner = children.enter_context(
                childproc.start(
                    restore_script.psql_argv(psql, target.argv_url()),
                    env=env,
                    stdin=childproc.PIPE,
                    stdout=childproc.DEVNULL,
                )
            )
            assert proc.stdout is not None and runner.stdin is not None
            relay = restore_script.Relay(proc.stdout, runner.stdin)
            relay.start()
        try:
            assert proc.stdin is not None
            stored = _feed(store, manifest, identity, proc.stdin, on_progress, t0)
            proc.stdin.close()
        except (_InputClosed, BrokenPipeError):
            pass  # pg_restore gave up first: its own error (or psql's) says why
        returncode = proc.wait()
        if runner is not None and relay is not None:
            runner_code = _finish_runner(runner, relay, returncode)
    if runner_code > 0 and runner is not None:
        raise _restore_failure(runner_code, runner.error_line(), target, tool="psql")
    if returncode != 0:
        raise _restore_failure(returncode, proc.error_line(), target)
    return _completed(manifest, target, stored, t0)


def _restore_parallel(
    store: ObjectStore,
    manifest: Manifest,
    target: PgTarget,
    pg_restore: PgTool,
    plan: restore_plan.RestorePlan,
    identity: str | None,
    on_progress: ProgressCallback | None,
) -> RestoreResult:
    t0 = _started(manifest, target, pg_restore, plan, via_psql=False)
    stored = parallel_restore.restore_parallel(
        target,
        pg_restore,
        plan.jobs,
        lambda spool: _feed(store, manifest, identity, spool, on_progress, t0),
        backup_id=manifest.id,
    )
    return _completed(manifest, target, stored, t0)


def _started(
    manifest: Manifest, target: PgTarget, pg_restore: PgTool, plan: restore_plan.RestorePlan, *, via_psql: bool
) -> float:
    """Log the start of a restore; returns its monotonic start time."""
    log.info(
        "restore_started",
        id=manifest.id,
        key=manifest.key,
        target=target.safe_url,
        pg_restore=pg_restore.version,
        via_psql=via_psql,
        jobs=plan.jobs,
        plan=plan.reason,
    )
    return time.monotonic()


def _completed(manifest: Manifest, target: PgTarget, stored: int, t0: float) -> RestoreResult:
    duration_s = round(time.monotonic() - t0, 3)
    log.info("restore_completed", id=manifest.id, target=target.safe_url, bytes=stored, duration_s=duration_s)
    return RestoreResult(manifest.id, target.dbname, target.safe_url, stored, duration_s)


def _feed(
    store: ObjectStore,
    manifest: Manifest,
    identity: str | None,
    sink: parallel_restore.BinarySink,
    on_progress: ProgressCallback | None,
    t0: float,
) -> int:
    """Send the decompressed backup to ``sink``, holding back its tail until the hash checks."""
    digest = hashlib.sha256()
    stored = 0
    last = t0

    def stored_chunks() -> Iterator[bytes]:
        nonlocal stored, last
        for chunk in store.iter_get(manifest.key):
            stored += len(chunk)
            digest.update(chunk)
            if on_progress and time.monotonic() - last >= 1.0:
                last = time.monotonic()
                on_progress(stored, last - t0)
            yield chunk

    chunks = decrypt_chunks(stored_chunks(), identity, manifest.id) if identity else stored_chunks()
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    held = b""
    try:
        for chunk in chunks:
            try:
                data = held + decompressor.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise DumpUnreadableError(
                    f"backup {manifest.id} is corrupt: {exc}; restore aborted, target unchanged"
                ) from exc
            held = data[-HOLD_BACK_BYTES:]
            sink.write(data[: len(data) - len(held)])
    except BrokenPipeError as exc:
        raise _InputClosed from exc
    except NotFoundError as exc:
        raise DumpUnreadableError(f"the dump of backup {manifest.id} is missing: {exc}; target unchanged") from exc
    if stored != manifest.size or digest.hexdigest() != manifest.sha256:
        raise DumpUnreadableError(
            f"backup {manifest.id} failed its checksum (sha256 {digest.hexdigest()[:16]}..., {stored} bytes; "
            f"manifest says {manifest.sha256[:16]}..., {manifest.size} bytes); restore aborted, target unchanged"
        )
    if not decompressor.eof:
        raise DumpUnreadableError(f"backup {manifest.id} is truncated; restore aborted, target unchanged")
    try:
        sink.write(held)
    except BrokenPipeError as exc:
        raise _InputClosed from exc
    return stored


class _InputClosed(Exception):
    """pg_restore closed its input early (it failed); its exit code and stderr tell why."""


def _finish_runner(runner: childproc.Child, relay: restore_script.Relay, returncode: int) -> int:
    """Let psql commit only a complete script from a pg_restore that succeeded; otherwise kill it."""
    relay.join()
    assert runner.stdin is not None
    if returncode == 0 and relay.complete:
        with contextlib.suppress(BrokenPipeError):
            runner.stdin.close()
        return runner.wait()
    if relay.refused:
        with contextlib.suppress(childproc.ChildTimeoutError):
            return runner.wait(timeout_s=10)
    if runner.poll() is None:
        runner.stop()
        return 0  # killed by us: pg_restore's error is the one to report
    return runner.returncode or 0


def _restore_failure(returncode: int, detail: str, target: PgTarget, tool: str = "pg_restore") -> Exception:
    detail = redactor(extra=password_forms(target.url))(detail or "no message")
    if returncode < 0:
        return RetryableError(f"{tool} was killed by signal {-returncode}; the target was rolled back")
    return PermanentError(f"{tool} failed (exit {returncode}): {detail}; the target was rolled back")
