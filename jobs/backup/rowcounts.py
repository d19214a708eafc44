"""Estimated row counts (BACKUP_ROW_COUNTS=estimate): the planner's statistics of the tables a backup contains.

Exact counts are read from the dump stream itself (``jobs.backup.dump_archive``). Estimates are
read in the backup's own snapshot from ``pg_class.reltuples``, for the tables pg_dump will
write data for. Table patterns follow pg_dump's wildcards (``*`` and ``?``); an
unqualified pattern matches the table name in any schema.
"""

from __future__ import annotations

import re
from typing import Any

from jobs.backup.config import BackupOptions

USER_TABLES_SQL = """
SELECT n.nspname, c.relname, c.reltuples::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  AND c.relpersistence <> 't'
ORDER BY 1, 2
"""


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.replace('"', ""))
    return re.compile(f"^{body}$")


def _matches(patterns: tuple[str, ...], schema: str, table: str) -> bool:
    for pattern in patterns:
        target = f"{schema}.{table}" if "." in pattern else table
        if _pattern_regex(pattern).match(target):
            return True
    return False


def _excluded_data_patterns(options: BackupOptions) -> tuple[str, ...]:
    prefix = "--exclude-table-data="
    return tuple(a[len(prefix) :] for a in options.extra_args if a.startswith(prefix))


def included_tables(rows: list[tuple[str, str, int]], options: BackupOptions) -> list[tuple[str, str, int]]:
    """The (schema, table, estimate) rows whose data pg_dump will write with ``options``."""
    if options.schema_only:
        return []
    kept = []
    no_data = _excluded_data_patterns(options)
    for schema, table, estimate in rows:
        if options.tables and not _matches(options.tables, schema, table):
            continue
        if _matches(options.exclude_tables, schema, table) or _matches(no_data, schema, table):
            continue
        if options.schemas and not any(_pattern_regex(p).match(schema) for p in options.schemas):
            continue
        if any(_pattern_regex(p).match(schema) for p in options.exclude_schemas):
            continue
        kept.append((schema, table, estimate))
    return kept


def estimate_rows(conn: Any, options: BackupOptions) -> dict[str, int]:
    """``{"schema.table": estimated rows}`` for every table in the backup."""
    rows = [(str(s), str(t), int(e)) for s, t, e in conn.execute(USER_TABLES_SQL).fetchall()]
    return {f"{schema}.{table}": max(estimate, 0) for schema, table, estimate in included_tables(rows, options)}
