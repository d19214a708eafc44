"""Parallel restore: the verified archive spooled to a temporary file, then ``pg_restore --jobs N``.

``pg_restore --jobs`` needs a seekable archive and cannot run in one transaction, so:

1. the backup is streamed from storage, decrypted and decompressed into a temporary file;
   its sha256 is checked against the manifest before anything touches the target;
2. ``pg_restore --jobs N --exit-on-error`` loads it into the target, which must be empty
   (``restore_plan`` only chooses this path then);
3. on any failure, or a kill of the job, what the restore created is dropped: every TOC
   entry's own drop statement, newest entry first, as ``pg_restore --clean`` would run
   them, each skipped if its object was never created, and never for the database itself
   or a schema or extension the target already had; then every large object (an empty
   target has none). The target is then checked to be empty again, as it was found; if
   anything is left, the error names it.

The temporary file is deleted whatever happens.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

import psycopg
import structlog

from jobs.backup.dump_archive import ArchiveReader, TocEntry
from railyard.core import childproc
from railyard.core.conninfo import password_forms
from railyard.core.errors import PermanentError, RetryableError
from railyard.core.pgtools import PgTarget, PgTool
from railyard.core.redact import redactor

log = structlog.get_logger()

READ_CHUNK_BYTES = 1024 * 1024
# Decompressed chunks (a few MB each) waiting for the spool's disk: two keep decompressing and writing
# overlapped; more only add memory (8 measured +45 MB RSS for no faster spool on a 234 MB/s disk).
SPOOL_QUEUE_CHUNKS = 2
# A killed pg_restore's connections end with it; a drop waits at most this long for their locks.
DROP_LOCK_TIMEOUT_SQL = "SET lock_timeout = '60s'"

# What makes a database not empty: objects in schemas other than the system ones, schemas
# other than public, extensions other than plpgsql, large objects, event triggers, publications.
LEFTOVERS_SQL = """
SELECT 'schema ' || quote_ident(nspname) FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname !~ '^pg_'
UNION ALL
SELECT 'relation public.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public'
UNION ALL
SELECT 'function public.' || quote_ident(p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public'
UNION ALL
SELECT 'type public.' || quote_ident(t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public'
UNION ALL
SELECT 'extension ' || quote_ident(extname) FROM pg_extension WHERE extname <> 'plpgsql'
UNION ALL
SELECT 'large object ' || oid FROM pg_largeobject_metadata
UNION ALL
SELECT 'event trigger ' || quote_ident(evtname) FROM pg_event_trigger
UNION ALL
SELECT 'publication ' || quote_ident(pubname) FROM pg_publication
LIMIT 20
"""
EXISTING_SQL = (
    "SELECT 'SCHEMA', nspname::text FROM pg_namespace UNION ALL SELECT 'EXTENSION', extname::text FROM pg_extension"
)
# pg_restore runs these entries' drops only with --create, and against another database.
NEVER_DROPPED = frozenset({"DATABASE", "DATABASE PROPERTIES"})


def leftovers(conn: psycopg.Connection[Any]) -> list[str]:
    """What the database holds beyond what a new, empty database has (at most 20 items)."""
    return [str(row[0]) for row in conn.execute(LEFTOVERS_SQL).fetchall()]


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class WriteBehind:
    """Writes to ``file`` from a thread, so that decrypting, decompressing and hashing the next chunk
    overlap writing this one: on a slow disk the spool is the parallel restore's longest step.

    A write error is raised by the next :meth:`write` or by :meth:`close`; chunks after it are dropped.
    """

    def __init__(self, file: IO[bytes]):
        self._file = file
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=SPOOL_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="restore-spool", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._file.write(data)
                except BaseException as exc:  # raised in the caller's thread by write() or close()
                    self._error = exc

    def write(self, data: bytes, /) -> int:
        if self._error is not None:
            raise self._error
        self._queue.put(data)
        return len(data)

    def close(self, *, check: bool = True) -> None:
        """Wait until every chunk is written; with ``check``, raise the write error, if there was one."""
        self._queue.put(None)
        self._thread.join()
        if check and self._error is not None:
            raise self._error


def restore_parallel(
    target: PgTarget,
    pg_restore: PgTool,
    jobs: int,
    spool: Callable[[BinarySink], int],
    *,
    backup_id: str,
    temp_dir: str | None = None,
) -> int:
    """Restore into the empty ``target`` with ``jobs`` connections; return the stored bytes read.

    ``spool`` writes the verified archive into the file it is given (raising if the
    checksum fails) and returns the number of stored bytes it read.
    """
    with target.connect(autocommit=True) as conn:
        existing = {(str(desc), str(name)) for desc, name in conn.execute(EXISTING_SQL).fetchall()}
    with tempfile.NamedTemporaryFile(prefix="railyard-restore-", suffix=".dump", dir=temp_dir) as spooled:
        t0 = time.monotonic()
        writer = WriteBehind(spooled)
        try:
            stored = spool(writer)
        except BaseException:
            writer.close(check=False)  # the spool's own error is the one to report
            raise
        writer.close()
        spooled.flush()
        log.info("restore_spooled", id=backup_id, bytes=spooled.tell(), duration_s=round(time.monotonic() - t0, 3))
        toc = read_toc(spooled.name)
        argv = [
            pg_restore.path,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--jobs={jobs}",
            "--no-password",
            f"--dbname={target.argv_url()}",
            spooled.name,
        ]
        try:
            # pg_restore --jobs forks its workers: leaving this block ends all of them.
            with childproc.start(argv, env=target.child_env(), stdout=childproc.DEVNULL) as child:
                returncode = child.wait()
                detail = child.error_line()
        except BaseException:
            drop_created(target, toc, existing)
            raise
        if returncode != 0:
            drop_created(target, toc, existing)
            raise _failure(returncode, detail, target)
    return stored


def read_toc(path: str) -> list[TocEntry]:
    """The TOC at the head of the archive file at ``path``."""
    reader = ArchiveReader()
    with open(path, "rb") as f:
        while (toc := reader.toc) is None:
            chunk = f.read(READ_CHUNK_BYTES)
            if not chunk:
                reader.finish()  # raises: the archive ended before its TOC did
            reader.feed(chunk)
    return toc


def drop_created(target: PgTarget, toc: list[TocEntry], existing: set[tuple[str, str]]) -> None:
    """Drop what a failed restore of ``toc`` created in the formerly empty target; check nothing is left.

    ``existing`` holds the (``SCHEMA``/``EXTENSION``, name) pairs the target had before.
    """
    dropped = 0
    with target.connect(autocommit=True) as conn:
        conn.execute(DROP_LOCK_TIMEOUT_SQL)
        with conn.transaction():
            for entry in reversed(toc):
                if not entry.drop or entry.drop.startswith("--") or entry.desc in NEVER_DROPPED:
                    continue
                if (entry.desc, entry.tag) in existing:
                    continue
                try:
                    with conn.transaction():  # a savepoint: an object never created is skipped
                        conn.execute(entry.drop.encode())
                    dropped += 1
                except psycopg.Error as exc:
                    if _never_created(exc):
                        continue
                    raise
            # Large objects by their own oids: archives of pg_dump 17+ group them with no drop per object.
            conn.execute("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
        left = leftovers(conn)
    log.warning("restore_undone", target=target.safe_url, dropped=dropped, left=left)
    if left:
        raise PermanentError(
            f"the failed restore into {target.safe_url} could not be fully undone; left behind: {', '.join(left)}"
        )


def _never_created(exc: psycopg.Error) -> bool:
    """The drop failed because its object (or its schema, table, type) does not exist."""
    state = exc.sqlstate or ""
    return state.startswith("42") or state == "3F000"  # undefined table/object/function..., no such schema


def _failure(returncode: int, detail: str, target: PgTarget) -> Exception:
    detail = redactor(extra=password_forms(target.url))(detail or "no message")
    undone = "what it created was dropped, the target is as it was"
    if returncode < 0:
        return RetryableError(f"pg_restore was killed by signal {-returncode}; {undone}")
    return PermanentError(f"pg_restore failed (exit {returncode}): {detail}; {undone}")
