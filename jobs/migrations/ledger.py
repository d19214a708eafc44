"""The ledger table: which migrations ran, with their checksum, when, how long and by whom.

It is the one table Railyard creates outside a migration (a migration cannot record
itself into a table that does not exist yet). Writes happen in the migration's own
transaction, so a migration and its ledger row commit or roll back together.
"""

from __future__ import annotations

from typing import Any

import psycopg

from jobs.migrations.files import MigrationFile
from jobs.migrations.plan import AppliedMigration

TABLE = "public.railyard_migrations"

CREATE_SQL = """
CREATE TABLE IF NOT EXISTS public.railyard_migrations (
    namespace text NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL,
    applied_by text NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""

Conn = psycopg.Connection[Any]


def ensure_table(conn: Conn) -> None:
    """Create the ledger if it does not exist (call with the migration lock held)."""
    conn.execute(CREATE_SQL)


def exists(conn: Conn) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    return bool(row and row[0])


def read(conn: Conn) -> list[AppliedMigration]:
    """Every ledger row, or none when the ledger does not exist yet (nothing was ever applied)."""
    if not exists(conn):
        return []
    rows = conn.execute(
        "SELECT namespace, version, name, checksum, applied_at, duration_ms, applied_by "
        "FROM public.railyard_migrations ORDER BY namespace, version"
    ).fetchall()
    return [
        AppliedMigration(
            namespace=str(r[0]),
            version=int(r[1]),
            name=str(r[2]),
            checksum=str(r[3]),
            applied_at=r[4],
            duration_ms=int(r[5]),
            applied_by=str(r[6]),
        )
        for r in rows
    ]


def record(conn: Conn, namespace: str, migration: MigrationFile, duration_ms: int, applied_by: str) -> None:
    conn.execute(
        "INSERT INTO public.railyard_migrations (namespace, version, name, checksum, duration_ms, applied_by) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (namespace, migration.version, migration.name, migration.checksum, duration_ms, applied_by),
    )


def forget(conn: Conn, namespace: str, version: int) -> None:
    conn.execute("DELETE FROM public.railyard_migrations WHERE namespace = %s AND version = %s", (namespace, version))


def accept(conn: Conn, namespace: str, migration: MigrationFile) -> None:
    """Make the ledger agree with the file as it is now (an explicitly accepted change)."""
    conn.execute(
        "UPDATE public.railyard_migrations SET checksum = %s, name = %s WHERE namespace = %s AND version = %s",
        (migration.checksum, migration.name, namespace, migration.version),
    )
