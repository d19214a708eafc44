"""One migrator at a time: a session-level advisory lock on a connection of its own.

The lock is taken before any timeout is set for migration statements, and waited for up
to ``wait_s`` with a lock_timeout of its own, so a second migrator waits for the first
rather than being cut short by the statements' short lock_timeout. Being session-level,
it also covers migrations run outside a transaction (CREATE INDEX CONCURRENTLY).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog

from railyard.core.conninfo import Conninfo
from railyard.core.errors import LockBusyError, RetryableError

log = structlog.get_logger()

# Advisory lock key (two int4s), per database: "RAIL", "MIG".
LOCK_KEY = (0x5241494C, 0x4D4947)
CONNECT_TIMEOUT_S = 10

Conn = psycopg.Connection[Any]


def connect(database_url: str, application_name: str) -> Conn:
    return Conninfo.parse(database_url, "DATABASE_URL").connect(
        autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=application_name
    )


def database_name(conn: Conn) -> str:
    return conn.info.dbname


@contextmanager
def migration_lock(database_url: str, wait_s: float) -> Iterator[Conn]:
    """Hold the migration lock of ``database_url``'s database for the block; yield the lock's connection."""
    conn = connect(database_url, "railyard-migrate-lock")
    try:
        _acquire(conn, wait_s)
        try:
            yield conn
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEY)
                log.info("migration_lock_released", database=database_name(conn))
    finally:
        conn.close()


def ensure_held(conn: Conn) -> None:
    """Fail if the lock's connection was lost (and with it the lock) during the run."""
    try:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid = %s AND objid = %s AND objsubid = 2 AND granted",
            LOCK_KEY,
        ).fetchone()
    except psycopg.OperationalError as exc:
        raise RetryableError(
            "lost the connection holding the migration lock; stopped before the next migration, run again"
        ) from exc
    if not row or not row[0]:
        raise RetryableError("the migration lock is no longer held; stopped before the next migration, run again")


def _acquire(conn: Conn, wait_s: float) -> None:
    database = database_name(conn)
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY).fetchone()
    if row and row[0]:
        log.info("migration_lock_acquired", database=database, waited_s=0.0)
        return
    holder = _holder(conn)
    log.info("migration_lock_waiting", database=database, wait_s=wait_s, **holder)
    t0 = time.monotonic()
    if wait_s > 0:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(wait_s * 1000)}ms",))
        try:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        except psycopg.errors.LockNotAvailable:
            pass
        else:
            conn.execute("RESET lock_timeout")
            log.info("migration_lock_acquired", database=database, waited_s=round(time.monotonic() - t0, 3))
            return
    who = f"pid {holder['holder_pid']}" if holder.get("holder_pid") else "another session"
    raise LockBusyError(
        f"another migrator ({who}) held the migration lock of database {database!r} for more than {wait_s:g} s; "
        "let it finish, or raise MIGRATION_LOCK_WAIT_S"
    )


def _holder(conn: Conn) -> dict[str, Any]:
    row = conn.execute(
        "SELECT a.pid, a.application_name, a.client_addr::text FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = %s AND l.objid = %s AND l.objsubid = 2",
        LOCK_KEY,
    ).fetchone()
    if not row:
        return {}
    return {"holder_pid": row[0], "holder_application": row[1], "holder_address": row[2]}
