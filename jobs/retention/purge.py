"""Delete rows older than a policy's maximum age, in short batches that writers barely notice.

Every name in a policy is first looked up in the catalog (the table exists, the column
exists and holds dates or timestamps, we may delete) and only then quoted into SQL with
``sql.Identifier``; values travel as parameters. Each batch is its own transaction:

    WITH batch AS (DELETE FROM t WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM t WHERE col >= after AND col < cutoff ORDER BY col
        LIMIT n FOR UPDATE SKIP LOCKED)) AND col < cutoff RETURNING col)
    SELECT count(*), max(col) FROM batch

with ``lock_timeout`` and ``statement_timeout`` set (``after``, the highest value the last
batch deleted, and the ordering only when ``col`` is indexed). ``SKIP LOCKED`` means the purge never
waits for a writer's row lock (a row being updated is retried by a last pass, and left
for the next run if still held then), and a
writer waits for the purge at most one batch. A killed run loses at most the batch in
flight, which rolls back; the next run continues where the last stopped, since the work
left is simply "rows older than the cut-off".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
import structlog
from psycopg import sql

from jobs.retention.purge_config import PurgePolicy, is_system_schema, system_schema_refusal
from railyard.core.conninfo import Conninfo
from railyard.core.errors import ConfigError, LockBusyError, PermanentError, RetryableError

log = structlog.get_logger()

APPLICATION_NAME = "railyard-retention"
CONNECT_TIMEOUT_S = 10
MIN_BATCH_SIZE = 100  # halving the batch on a statement timeout stops here
LOCK_RETRIES = 3  # per batch, waiting lock_timeout x 1, 2, 4 between tries
PROGRESS_INTERVAL_S = 10.0
COUNT_TIMEOUT_S = 300.0  # a dry run's count(*) may read the whole table
TIMESTAMP_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")

_TABLE_QUERY = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       has_table_privilege(c.oid, 'DELETE') AND has_table_privilege(c.oid, 'SELECT')
       AND has_any_column_privilege(c.oid, 'UPDATE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %(table)s
  AND CASE WHEN %(schema)s::text IS NULL THEN pg_table_is_visible(c.oid) ELSE n.nspname = %(schema)s::text END
"""
_COLUMN_QUERY = """
SELECT a.attnum, format_type(a.atttypid, NULL)
FROM pg_attribute a
WHERE a.attrelid = %(oid)s AND a.attname = %(column)s AND a.attnum > 0 AND NOT a.attisdropped
"""
# An index whose first key is the column lets each batch find its rows without a scan.
_INDEX_QUERY = """
SELECT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = %(oid)s AND i.indkey[0] = %(attnum)s AND i.indisvalid AND i.indpred IS NULL
)
"""
_RELKIND_NAMES = {
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "i": "an index",
    "I": "an index",
    "S": "a sequence",
    "c": "a composite type",
    "t": "a TOAST table",
}


@dataclass(frozen=True)
class PurgeTarget:
    """A policy whose names were found in the catalog."""

    policy: PurgePolicy
    schema: str
    table: str
    column: str
    column_type: str
    indexed: bool

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def cutoff(self, now: datetime) -> datetime | date:
        """Rows whose column is before this are expired, in the column's own type (UTC)."""
        moment = self.policy.max_age.before(now)
        if self.column_type == "date":
            return moment.date()
        if self.column_type == "timestamp without time zone":
            return moment.replace(tzinfo=None)
        return moment


@dataclass
class PurgeResult:
    table: str
    column: str
    max_age: str
    cutoff: str
    indexed: bool
    rows: int = 0  # deleted, or in a dry run would be deleted
    batches: int = 0
    duration_s: float = 0.0
    complete: bool = True

    @property
    def rate_rows_s(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class PurgeReport:
    dry_run: bool
    results: list[PurgeResult] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "policies": [{**r.__dict__, "rate_rows_s": round(r.rate_rows_s, 1)} for r in self.results],
        }


def connect(database_url: str) -> psycopg.Connection[Any]:
    """An autocommit connection in UTC, so timestamps without time zone read as UTC."""
    conn = Conninfo.parse(database_url, "DATABASE_URL").connect(
        autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=APPLICATION_NAME
    )
    conn.execute("SELECT set_config('TimeZone', 'UTC', false)")
    return conn


def purge_expired_rows(
    conn: psycopg.Connection[Any],
    policies: Sequence[PurgePolicy],
    *,
    now: datetime,
    dry_run: bool = False,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PurgeReport:
    """Apply every policy (or, with ``dry_run``, count what each would delete).

    ``deadline`` (a ``clock()`` value) stops between batches; the report then says
    ``complete: false`` and the next run continues.
    """
    targets = resolve_targets(conn, policies)
    report = PurgeReport(dry_run=dry_run)
    for target in targets:
        cutoff = target.cutoff(now)
        result = PurgeResult(
            table=target.name,
            column=target.column,
            max_age=str(target.policy.max_age),
            cutoff=cutoff.isoformat(),
            indexed=target.indexed,
        )
        report.results.append(result)
        if dry_run:
            result.rows = count_expired(conn, target, cutoff)
            log.info("retention_dry_run", table=target.name, column=target.column, rows=result.rows)
        else:
            _purge_target(conn, target, cutoff, result, deadline=deadline, clock=clock, sleep=sleep)
    return report


def resolve_targets(conn: psycopg.Connection[Any], policies: Sequence[PurgePolicy]) -> list[PurgeTarget]:
    """Check every policy against the catalog; raise one ConfigError listing every problem."""
    problems: list[str] = []
    targets = []
    for policy in policies:
        target = _resolve(conn, policy, problems)
        if target is not None:
            targets.append(target)
            if not target.indexed:
                log.warning("retention_column_not_indexed", table=target.name, column=target.column)
    if problems:
        raise ConfigError(problems)
    return targets


def _resolve(conn: psycopg.Connection[Any], policy: PurgePolicy, problems: list[str]) -> PurgeTarget | None:
    rows = conn.execute(_TABLE_QUERY, {"table": policy.table, "schema": policy.schema}).fetchall()
    if not rows:
        where = f"schema {policy.schema!r}" if policy.schema else "the search_path"
        problems.append(f"table {policy.name!r} does not exist in {where}; check the name in the retention config")
        return None
    oid, schema, table, relkind, allowed = rows[0]
    if is_system_schema(schema):  # an unqualified catalog name (pg_authid) resolves to pg_catalog
        problems.append(system_schema_refusal(schema, table))
        return None
    if relkind == "p":
        problems.append(
            f"{policy.name!r} is a partitioned table; drop expired partitions instead, "
            "or write one policy per partition"
        )
        return None
    if relkind != "r":
        problems.append(f"{policy.name!r} is {_RELKIND_NAMES.get(relkind, 'not a table')}; only tables can be cleaned")
        return None
    if not allowed:
        problems.append(
            f"the database user may not delete from {policy.name!r}; GRANT it SELECT, DELETE and UPDATE "
            "(UPDATE for the row locks that let writers go first)"
        )
        return None
    column = conn.execute(_COLUMN_QUERY, {"oid": oid, "column": policy.column}).fetchone()
    if column is None:
        problems.append(
            f"table {policy.name!r} has no column {policy.column!r}; check the name in the retention config"
        )
        return None
    attnum, type_name = column
    if type_name not in TIMESTAMP_TYPES:
        problems.append(
            f"column {policy.column!r} of {policy.name!r} is {type_name}; "
            "retention needs a date, timestamp or timestamptz column"
        )
        return None
    index_row = conn.execute(_INDEX_QUERY, {"oid": oid, "attnum": attnum}).fetchone()
    indexed = bool(index_row and index_row[0])
    return PurgeTarget(policy, schema, table, policy.column, type_name, indexed)


def _names(target: PurgeTarget) -> dict[str, sql.Composable]:
    return {"table": sql.Identifier(target.schema, target.table), "column": sql.Identifier(target.column)}


def _set_timeouts(conn: psycopg.Connection[Any], lock_timeout_s: float, statement_timeout_s: float) -> None:
    conn.execute(
        "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
        [f"{round(lock_timeout_s * 1000)}ms", f"{round(statement_timeout_s * 1000)}ms"],
    )


def count_expired(conn: psycopg.Connection[Any], target: PurgeTarget, cutoff: datetime | date) -> int:
    query = sql.SQL("SELECT count(*) FROM {table} WHERE {column} < %s").format(**_names(target))
    try:
        with conn.transaction():
            _set_timeouts(conn, target.policy.lock_timeout_s, COUNT_TIMEOUT_S)
            row = conn.execute(query, [cutoff]).fetchone()
    except psycopg.errors.LockNotAvailable as exc:
        raise LockBusyError(
            f"could not read {target.name} within {target.policy.lock_timeout_s:g} s: another session holds "
            "a conflicting lock (a migration?); try again later"
        ) from exc
    return int(row[0]) if row else 0


def _purge_target(
    conn: psycopg.Connection[Any],
    target: PurgeTarget,
    cutoff: datetime | date,
    result: PurgeResult,
    *,
    deadline: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    policy = target.policy
    # With an index, batches walk the column upwards from where the last one ended, so no
    # batch scans past the index entries of rows deleted before it.
    first, following = _batch_statement(target, after=False), _batch_statement(target, after=True)
    after: datetime | date | None = None
    limit = policy.batch_size
    started = clock()
    last_report = started
    log.info("retention_started", table=target.name, column=target.column, cutoff=result.cutoff, batch_size=limit)
    while True:
        if deadline is not None and clock() >= deadline:
            result.complete = False
            log.warning("retention_budget_exhausted", table=target.name, rows=result.rows)
            break
        params = {"cutoff": cutoff, "limit": limit, "after": after}
        outcome = _delete_batch(conn, target, first if after is None else following, params, result.rows, sleep)
        if outcome is None:  # statement timeout: smaller batches
            if limit <= MIN_BATCH_SIZE:
                raise PermanentError(
                    f"deleting {limit} rows from {target.name} took longer than {policy.statement_timeout_s:g} s; "
                    f"add an index on {target.column!r} or raise statement_timeout_s in the retention config"
                )
            limit = max(limit // 2, MIN_BATCH_SIZE)
            log.warning("retention_batch_shrunk", table=target.name, batch_size=limit)
            continue
        deleted, highest = outcome
        if target.indexed and highest is not None:
            after = highest
        result.batches += 1
        result.rows += deleted
        result.duration_s = clock() - started
        if clock() - last_report >= PROGRESS_INTERVAL_S:
            last_report = clock()
            log.info(
                "retention_progress",
                table=target.name,
                rows=result.rows,
                batches=result.batches,
                rate_rows_s=round(result.rate_rows_s),
            )
        if deleted == 0:
            if after is None:
                break
            after = None  # one pass from the start again, for rows skipped while a writer held them
            continue
        sleep(policy.pause_s)
    result.duration_s = clock() - started
    log.info(
        "retention_finished",
        table=target.name,
        rows=result.rows,
        batches=result.batches,
        duration_s=round(result.duration_s, 3),
        rate_rows_s=round(result.rate_rows_s),
        complete=result.complete,
    )


def _batch_statement(target: PurgeTarget, *, after: bool) -> sql.Composed:
    """One batch: lock up to ``limit`` expired rows nobody else holds, delete them, report count and highest value."""
    lower = "{column} >= %(after)s AND " if after else ""
    order = " ORDER BY {column}" if target.indexed else ""  # without an index, ordering would sort every batch
    return sql.SQL(
        "WITH batch AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {table} WHERE " + lower + "{column} < %(cutoff)s" + order + " "
        "LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) AND {column} < %(cutoff)s RETURNING {column}) "
        "SELECT count(*), max({column}) FROM batch"
    ).format(**_names(target))


def _delete_batch(
    conn: psycopg.Connection[Any],
    target: PurgeTarget,
    statement: sql.Composed,
    params: dict[str, Any],
    done: int,
    sleep: Callable[[float], None],
) -> tuple[int, Any] | None:
    """Delete one batch in its own transaction: (rows, highest value deleted), or None after a statement timeout."""
    policy = target.policy
    for attempt in range(LOCK_RETRIES + 1):
        try:
            with conn.transaction():
                _set_timeouts(conn, policy.lock_timeout_s, policy.statement_timeout_s)
                row = conn.execute(statement, params).fetchone()
                return (int(row[0]), row[1]) if row else (0, None)
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == LOCK_RETRIES:
                raise LockBusyError(
                    f"could not lock {target.name} within {policy.lock_timeout_s:g} s, {LOCK_RETRIES + 1} times: "
                    f"another session holds a conflicting lock (a migration?); {done} rows were deleted and "
                    "the next run continues"
                ) from exc
            wait_s = policy.lock_timeout_s * 2**attempt
            log.warning("retention_lock_busy", table=target.name, attempt=attempt + 1, wait_s=wait_s)
            sleep(wait_s)
        except psycopg.errors.QueryCanceled:
            return None
        except (psycopg.errors.IntegrityError, psycopg.errors.InsufficientPrivilege) as exc:
            detail = exc.diag.message_primary or type(exc).__name__
            raise PermanentError(f"cannot delete expired rows from {target.name}: {detail}") from exc
        except psycopg.OperationalError as exc:
            raise RetryableError(
                f"lost the connection to PostgreSQL while deleting from {target.name} after {done} rows; "
                "the next run continues"
            ) from exc
    raise AssertionError("unreachable")  # the loop returns or raises
