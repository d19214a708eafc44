"""Apply or revert one migration, with its ledger row, under lock_timeout and statement_timeout.

A transactional migration runs with its ledger write in one transaction: it commits whole
or not at all. When a statement waits longer than lock_timeout for a table lock (so the
application's queries queued behind it wait no longer than that), the transaction is
rolled back and tried again after a backoff; after the last retry the run stops with a
RetryableError. A ``no-transaction`` migration runs statement by statement; a statement
that hit the lock timeout is retried alone (the ones before it have taken effect), and
an index left INVALID by an interrupted CREATE INDEX CONCURRENTLY stops the run.
"""

from __future__ import annotations

import importlib.util
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import psycopg
import structlog

from jobs.migrations.files import MigrationFile
from jobs.migrations.plan import drop_statements, names_index
from jobs.migrations.sqlsplit import Statement, split_statements
from railyard.core.errors import LockBusyError, PermanentError, RetryableError

log = structlog.get_logger()

Conn = psycopg.Connection[Any]
Direction = Literal["up", "down"]
LedgerWrite = Callable[[Conn, int], None]
LOCK_ERRORS = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)


class MigrationFailed(PermanentError):
    """A migration's own statements or code failed; another attempt cannot fix it."""


@dataclass(frozen=True)
class Timeouts:
    lock_timeout_s: float
    statement_timeout_s: float  # 0: no limit
    retry_delays: tuple[float, ...]  # one per retry after a lock timeout


@dataclass(frozen=True)
class Step:
    namespace: str
    migration: MigrationFile
    direction: Direction

    @property
    def sql(self) -> str | None:
        return self.migration.up_sql if self.direction == "up" else self.migration.down_sql

    @property
    def first_line(self) -> int:
        return self.migration.up_line if self.direction == "up" else self.migration.down_line

    @property
    def verb(self) -> str:
        return "applying" if self.direction == "up" else "reverting"


@dataclass(frozen=True)
class StepResult:
    duration_ms: int
    attempts: int


def configure_session(conn: Conn, timeouts: Timeouts) -> None:
    """Set the statement timeouts for this session; called once the migration lock is held."""
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
        (f"{int(timeouts.lock_timeout_s * 1000)}ms", f"{int(timeouts.statement_timeout_s * 1000)}ms"),
    )


def run_step(
    conn: Conn,
    step: Step,
    ledger_write: LedgerWrite,
    timeouts: Timeouts,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Apply or revert ``step`` on ``conn`` (an autocommit connection) and write its ledger change."""
    m = step.migration
    step_log = log.bind(namespace=step.namespace, migration=m.name, version=m.version, direction=step.direction)
    step_log.info("migration_started", transactional=m.transactional)
    if m.transactional:
        result = _run_in_transaction(conn, step, ledger_write, timeouts, sleep)
    else:
        result = _run_without_transaction(conn, step, ledger_write, timeouts, sleep)
    step_log.info("migration_finished", duration_ms=result.duration_ms, attempts=result.attempts)
    return result


def _run_in_transaction(
    conn: Conn, step: Step, ledger_write: LedgerWrite, timeouts: Timeouts, sleep: Callable[[float], None]
) -> StepResult:
    # SQL runs statement by statement (as psql does), so a failure can name its statement and line.
    statements = split_statements(step.sql or "") if step.migration.kind == "sql" else []
    body = _python_body(step) if step.migration.kind == "py" else None
    attempt = 0
    while True:
        attempt += 1
        t0 = time.monotonic()
        current: tuple[int, Statement] | None = None
        try:
            with conn.transaction():
                if body is not None:
                    body(conn)
                for current in enumerate(statements, start=1):
                    conn.execute(current[1].text.encode())  # the migration file's own SQL, sent as written
                ledger_write(conn, _ms_since(t0))
            return StepResult(duration_ms=_ms_since(t0), attempts=attempt)
        except LOCK_ERRORS as exc:
            _wait_or_give_up(step, exc, attempt, timeouts, sleep, rolled_back=True, statement=_number(current))
        except Exception as exc:
            raise _failure(conn, step, exc, rolled_back=True, statement=current) from exc


def _run_without_transaction(
    conn: Conn, step: Step, ledger_write: LedgerWrite, timeouts: Timeouts, sleep: Callable[[float], None]
) -> StepResult:
    m = step.migration
    invalid_before = invalid_indexes(conn)
    t0 = time.monotonic()
    attempts = 1
    if m.kind == "py":
        body = _python_body(step)
        try:
            body(conn)
        except Exception as exc:
            raise _failure(conn, step, exc, rolled_back=False, invalid_before=invalid_before) from exc
    else:
        statements = split_statements(step.sql or "")
        for number, statement in enumerate(statements, start=1):
            attempt = 0
            while True:
                attempt += 1
                try:
                    conn.execute(statement.text.encode())
                    break
                except LOCK_ERRORS as exc:
                    _refuse_new_invalid_indexes(conn, step, invalid_before)
                    _wait_or_give_up(step, exc, attempt, timeouts, sleep, rolled_back=False, statement=number)
                except Exception as exc:
                    raise _failure(
                        conn, step, exc, rolled_back=False, statement=(number, statement), invalid_before=invalid_before
                    ) from exc
            attempts = max(attempts, attempt)
    _refuse_new_invalid_indexes(conn, step, invalid_before)
    duration_ms = _ms_since(t0)
    ledger_write(conn, duration_ms)
    return StepResult(duration_ms=duration_ms, attempts=attempts)


def _wait_or_give_up(
    step: Step,
    exc: psycopg.Error,
    attempt: int,
    timeouts: Timeouts,
    sleep: Callable[[float], None],
    *,
    rolled_back: bool,
    statement: int | None = None,
) -> None:
    """Sleep before the next attempt, or raise once the retries are used up."""
    m = step.migration
    deadlock = isinstance(exc, psycopg.errors.DeadlockDetected)
    if attempt > len(timeouts.retry_delays):
        cause = (
            "was chosen as a deadlock victim"
            if deadlock
            else f"waited more than {timeouts.lock_timeout_s:g} s (MIGRATION_LOCK_TIMEOUT_S) for a lock held elsewhere"
        )
        undone = (
            "it was rolled back and not recorded"
            if rolled_back
            else "statements before the one that waited had taken effect; it was not recorded"
        )
        raise LockBusyError(
            f"{step.verb} {m.display} gave up after {attempt} attempt(s): each time it {cause}; {undone}. "
            "Find the blocking session in pg_stat_activity, or run again when the database is quieter"
        ) from exc
    delay = timeouts.retry_delays[attempt - 1]
    log.warning(
        "migration_lock_timeout",
        namespace=step.namespace,
        migration=m.name,
        direction=step.direction,
        attempt=attempt,
        statement=statement,
        deadlock=deadlock,
        lock_timeout_s=timeouts.lock_timeout_s,
        retry_in_s=delay,
    )
    sleep(delay)


def _number(current: tuple[int, Statement] | None) -> int | None:
    return current[0] if current else None


def _python_body(step: Step) -> Callable[[Conn], None]:
    m = step.migration
    module = load_module(step.namespace, m)
    name = "upgrade" if step.direction == "up" else "downgrade"
    func = getattr(module, name, None)
    if not callable(func):
        raise MigrationFailed(f"{m.display}: {name} is not a function; define {name}(conn)")
    return lambda conn: func(conn)


def load_module(namespace: str, m: MigrationFile) -> ModuleType:
    """Import a Python migration from its file, under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"railyard_migration_{namespace}_{m.version}", m.path)
    if spec is None or spec.loader is None:
        raise MigrationFailed(f"{m.display}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        line = _line_in(exc, m)
        where = f" line {line}" if line else ""
        raise MigrationFailed(
            f"{m.display}{where}: importing it raised {type(exc).__name__}: {_one_line(exc)}; nothing was run"
        ) from exc
    return module


def _failure(
    conn: Conn,
    step: Step,
    exc: BaseException,
    *,
    rolled_back: bool,
    statement: tuple[int, Statement] | None = None,
    invalid_before: dict[str, str] | None = None,
) -> Exception:
    m = step.migration
    if isinstance(exc, psycopg.OperationalError) and (conn.broken or conn.closed):
        undone = "it was rolled back" if rolled_back else "statements before the failure may have taken effect"
        return RetryableError(
            f"lost the connection to PostgreSQL while {step.verb} {m.display}; {undone} and not recorded; run again"
        )
    where = _location(step, exc, statement)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        what = "was cancelled (statement timeout MIGRATION_STATEMENT_TIMEOUT_S, or an operator)"
    elif isinstance(exc, psycopg.Error):
        what = f"failed: {_pg_message(exc)}"
    else:
        what = f"raised {type(exc).__name__}: {_one_line(exc)}"
    if rolled_back:
        outcome = "it was rolled back and not recorded; fix it and run again"
    elif statement is not None and statement[0] > 1:
        outcome = (
            f"it runs without a transaction, so statements 1-{statement[0] - 1} had taken effect and were not "
            "undone; it was not recorded, so fix it (make its statements safe to re-run, e.g. IF NOT EXISTS) "
            "and run again"
        )
    else:
        outcome = "it runs without a transaction, so nothing was undone; it was not recorded; fix it and run again"
    left = _left_invalid(conn, step, invalid_before) if invalid_before is not None else []
    if left:
        outcome += (
            f". It left INVALID index(es) {', '.join(left)}, which the next run would refuse: first "
            f"{drop_statements(left)}"
        )
    return MigrationFailed(f"{step.verb} {m.display}{where} {what}; {outcome}")


def _location(step: Step, exc: BaseException, statement: tuple[int, Statement] | None) -> str:
    m = step.migration
    if m.kind == "py":
        line = _line_in(exc, m)
        return f" (line {line})" if line else ""
    position = _position(exc)
    if statement is not None:
        number, st = statement
        # The server's position counts from the statement's leading comments; without one, its code's first line.
        line = step.first_line - 1 + (st.line + st.text[: position - 1].count("\n") if position else st.code_line)
        return f" at statement {number} (line {line})"
    if position:
        return f" at line {step.first_line + (step.sql or '')[: position - 1].count(chr(10))}"
    return ""


def _position(exc: BaseException) -> int | None:
    if not isinstance(exc, psycopg.Error):
        return None
    raw = exc.diag.statement_position
    return int(raw) if raw and str(raw).isdigit() else None


def _line_in(exc: BaseException, m: MigrationFile) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == str(m.path):
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(m.path)]
    return frames[-1].lineno if frames else None


def _pg_message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary or _one_line(exc)
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return f"{primary}{state}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def invalid_indexes(conn: Conn) -> dict[str, str]:
    """INVALID indexes (left by an interrupted CREATE INDEX CONCURRENTLY): qualified name -> bare name."""
    rows = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT i.indisvalid"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _left_invalid(conn: Conn, step: Step, before: dict[str, str]) -> list[str]:
    """INVALID indexes new since the migration started, or named in its SQL."""
    if conn.broken or conn.closed:
        return []
    try:
        found = invalid_indexes(conn)
    except psycopg.Error:
        return []
    text = step.sql or ""
    return sorted(q for q, bare in found.items() if q not in before or names_index(text, bare))


def _refuse_new_invalid_indexes(conn: Conn, step: Step, before: dict[str, str]) -> None:
    """Stop if this migration left an INVALID index: new since it started, or named in its SQL."""
    left = _left_invalid(conn, step, before)
    if left:
        raise MigrationFailed(
            f"{step.verb} {step.migration.display} left INVALID index(es) {', '.join(left)} (an interrupted CREATE "
            f"INDEX CONCURRENTLY); it was not recorded; drop them ({drop_statements(left)}) and run again"
        )


def _ms_since(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)
