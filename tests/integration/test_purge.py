"""Batched deletion of expired rows against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from jobs.retention import purge
from jobs.retention.purge_config import PurgePolicy
from railyard.core.durations import Duration
from railyard.core.errors import ConfigError, LockBusyError, PermanentError

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
CHECK = "check the name in the retention config"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with purge.connect(database_url) as connection:
        yield connection


def events_table(conn: psycopg.Connection[Any], *, expired: int, fresh: int, index: bool = True) -> None:
    """``expired`` rows older than CUTOFF (oldest first by id) and ``fresh`` rows newer than it."""
    conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz, note text)")
    conn.execute(
        "INSERT INTO events (created_at, note) SELECT %s - make_interval(secs => %s - g), 'old' "
        "FROM generate_series(1, %s) g",
        [CUTOFF - timedelta(seconds=1), expired, expired],
    )
    conn.execute(
        "INSERT INTO events (created_at, note) SELECT %s + make_interval(secs => g), 'new' "
        "FROM generate_series(1, %s) g",
        [CUTOFF, fresh],
    )
    if index:
        conn.execute("CREATE INDEX events_created_at ON events (created_at)")
    conn.execute("ANALYZE events")


def count(conn: psycopg.Connection[Any], query: str, params: Any = None) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def expired_left(conn: psycopg.Connection[Any]) -> int:
    return count(conn, "SELECT count(*) FROM events WHERE created_at < %s", [CUTOFF])


def policy(table: str = "events", column: str = "created_at", **tuning: Any) -> PurgePolicy:
    return PurgePolicy(table=table, column=column, max_age=Duration(days=30), **tuning)


def test_deletes_exactly_the_expired_rows_of_each_column_type(conn: psycopg.Connection[Any]) -> None:
    """timestamptz, timestamp (read as UTC) and date columns; the cut-off itself and NULLs are kept."""
    events_table(conn, expired=2500, fresh=10)
    conn.execute("INSERT INTO events (created_at, note) VALUES (%s, 'at-cutoff'), (NULL, 'null')", [CUTOFF])
    conn.execute("CREATE TABLE logs (id int PRIMARY KEY, at timestamp)")
    conn.execute(
        "INSERT INTO logs VALUES (1, %s), (2, %s), (3, %s)",
        [
            (CUTOFF - timedelta(microseconds=1)).replace(tzinfo=None),
            CUTOFF.replace(tzinfo=None),
            NOW.replace(tzinfo=None),
        ],
    )
    conn.execute("CREATE TABLE visits (id int PRIMARY KEY, day date)")
    conn.execute("INSERT INTO visits VALUES (1, '2026-10-20'), (2, '2026-10-21'), (3, '2026-11-20')")
    policies = [
        policy(batch_size=1000, pause_s=0),
        PurgePolicy("logs", "at", Duration(days=30), schema="public"),
        policy("visits", "day"),
    ]

    report = purge.purge_expired_rows(conn, policies, now=NOW)

    assert [r.rows for r in report.results] == [2500, 1, 1]
    # 1000 + 1000 + 500, an empty batch ending the walk up the index, an empty last pass from the start
    assert report.results[0].batches == 5
    assert [r[0] for r in conn.execute("SELECT DISTINCT note FROM events ORDER BY 1").fetchall()] == [
        "at-cutoff",
        "new",
        "null",
    ]
    assert count(conn, "SELECT count(*) FROM events") == 12
    assert [r[0] for r in conn.execute("SELECT id FROM logs ORDER BY id")] == [2, 3]
    assert [r[0] for r in conn.execute("SELECT id FROM visits ORDER BY id")] == [2, 3]
    assert [str(CUTOFF), str(CUTOFF.replace(tzinfo=None)), "2026-10-21"] == [
        r.cutoff.replace("T", " ") for r in report.results
    ]
    assert report.complete


def test_dry_run_counts_and_deletes_nothing(conn: psycopg.Connection[Any]) -> None:
    events_table(conn, expired=1234, fresh=50)
    report = purge.purge_expired_rows(conn, [policy()], now=NOW, dry_run=True)
    assert [r.rows for r in report.results] == [1234]
    assert expired_left(conn) == 1234
    assert {k: report.to_dict()[k] for k in ("dry_run", "complete")} == {"dry_run": True, "complete": True}


def test_injection_attempts_and_wrong_names_are_refused_before_anything_is_deleted(
    conn: psycopg.Connection[Any],
) -> None:
    events_table(conn, expired=100, fresh=10)
    conn.execute("CREATE VIEW events_view AS SELECT * FROM events")
    conn.execute("CREATE TABLE parted (at timestamptz) PARTITION BY RANGE (at)")
    bad = [
        policy("events; DROP TABLE events; --"),
        policy('events" WHERE true; --'),
        policy("events", "created_at < now() OR true --"),
        policy("events", "note"),
        policy("events_view"),
        policy("parted", "at"),
        PurgePolicy("events", "created_at", Duration(days=1), schema="pg_temp; DROP TABLE events"),
    ]
    with pytest.raises(ConfigError) as caught:
        purge.purge_expired_rows(conn, [policy(), *bad], now=NOW)
    assert caught.value.problems == [
        "table 'events; DROP TABLE events; --' does not exist in the search_path; " + CHECK,
        "table 'events\" WHERE true; --' does not exist in the search_path; " + CHECK,
        "table 'events' has no column 'created_at < now() OR true --'; check the name in the retention config",
        "column 'note' of 'events' is text; retention needs a date, timestamp or timestamptz column",
        "'events_view' is a view; only tables can be cleaned",
        "'parted' is a partitioned table; drop expired partitions instead, or write one policy per partition",
        "table 'pg_temp; DROP TABLE events.events' does not exist in schema 'pg_temp; DROP TABLE events'; "
        "check the name in the retention config",
    ]
    assert expired_left(conn) == 100  # the valid policy did not run either


def test_odd_but_real_names_are_quoted_not_refused(conn: psycopg.Connection[Any]) -> None:
    conn.execute('CREATE SCHEMA "Audit Log"')
    conn.execute('CREATE TABLE "Audit Log"."Odd ""Name""; x" ("When?" timestamptz)')
    conn.execute('INSERT INTO "Audit Log"."Odd ""Name""; x" VALUES (%s), (%s)', [CUTOFF - timedelta(days=1), NOW])
    odd = PurgePolicy('Odd "Name"; x', "When?", Duration(days=30), schema="Audit Log")
    report = purge.purge_expired_rows(conn, [odd], now=NOW)
    assert [r.rows for r in report.results] == [1]
    assert report.results[0].table == 'Audit Log.Odd "Name"; x'


def test_missing_index_is_warned_about(conn: psycopg.Connection[Any]) -> None:
    events_table(conn, expired=10, fresh=1, index=False)
    with capture_logs() as logs:
        report = purge.purge_expired_rows(conn, [policy()], now=NOW)
    assert [r.indexed for r in report.results] == [False]
    assert [
        {"table": e["table"], "column": e["column"]} for e in logs if e["event"] == "retention_column_not_indexed"
    ] == [{"table": "public.events", "column": "created_at"}]
    assert expired_left(conn) == 0


class Writer(threading.Thread):
    """An application writing to the table: updates expired rows and inserts new ones, timing each statement."""

    def __init__(self, database_url: str, lock_timeout_s: float, expired_ids: int):
        super().__init__(daemon=True)
        self.database_url = database_url
        self.lock_timeout_s = lock_timeout_s
        self.expired_ids = expired_ids
        self.latencies: list[float] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(self.lock_timeout_s * 1000)}ms"])
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    # Walk the expired ids in the order the purge deletes them, to meet its batches.
                    conn.execute("UPDATE events SET note = 'touched' WHERE id = %s", [(n * 37) % self.expired_ids + 1])
                    conn.execute("INSERT INTO events (created_at, note) VALUES (now(), 'app')")
                except psycopg.Error as exc:
                    self.errors.append(exc)
                self.latencies.append(time.monotonic() - started)


def test_concurrent_writer_is_never_blocked_longer_than_the_lock_timeout(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    events_table(conn, expired=30_000, fresh=1000)
    writer = Writer(database_url, lock_timeout_s=1.0, expired_ids=30_000)
    writer.start()
    try:
        time.sleep(0.2)
        report = purge.purge_expired_rows(conn, [policy(batch_size=1000, pause_s=0.01, lock_timeout_s=1.0)], now=NOW)
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    assert writer.errors == []
    assert len(writer.latencies) > 50
    assert max(writer.latencies) < 1.0
    assert report.results[0].rows > 29_000
    purge.purge_expired_rows(conn, [policy()], now=NOW)  # a row the writer held at the very end goes on the next run
    assert expired_left(conn) == 0


def test_rows_locked_by_a_writer_are_skipped_not_waited_for(conn: psycopg.Connection[Any], database_url: str) -> None:
    """A writer's open transaction on an expired row does not block the purge; the next run deletes that row."""
    events_table(conn, expired=500, fresh=10)
    with psycopg.connect(database_url) as holder:
        holder.execute("UPDATE events SET note = 'held' WHERE id = 250")
        started = time.monotonic()
        report = purge.purge_expired_rows(
            conn, [policy(batch_size=100, pause_s=0, lock_timeout_s=5.0, statement_timeout_s=10)], now=NOW
        )
        assert time.monotonic() - started < 5.0
        assert [r.rows for r in report.results] == [499]
        holder.commit()
    assert [r[0] for r in conn.execute("SELECT id FROM events WHERE created_at < %s", [CUTOFF])] == [250]
    purge.purge_expired_rows(conn, [policy()], now=NOW)
    assert expired_left(conn) == 0


def test_a_row_released_during_the_run_is_deleted_by_the_last_pass(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    """A row skipped because a writer held it is picked up once the walk up the index is done."""
    events_table(conn, expired=500, fresh=10)
    with psycopg.connect(database_url) as holder:
        holder.execute("UPDATE events SET note = 'held' WHERE id = 50")
        pauses: list[float] = []

        def pause(seconds: float) -> None:  # the writer commits right after the first batch
            if not pauses:
                holder.commit()
            pauses.append(seconds)

        report = purge.purge_expired_rows(conn, [policy(batch_size=100, pause_s=0.01)], now=NOW, sleep=pause)
    assert [r.rows for r in report.results] == [500]
    assert expired_left(conn) == 0


def test_table_lock_held_elsewhere_gives_up_after_the_lock_timeout(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    events_table(conn, expired=100, fresh=10)
    with psycopg.connect(database_url) as migration:
        migration.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(LockBusyError, match=r"could not lock public\.events within 0\.1 s, 4 times"):
            purge.purge_expired_rows(conn, [policy(lock_timeout_s=0.1, statement_timeout_s=1)], now=NOW)
        elapsed = time.monotonic() - started
        migration.rollback()
    # four waits of 0.1 s plus back-off of 0.1 + 0.2 + 0.4 s
    assert 1.0 <= elapsed < 3.0
    assert expired_left(conn) == 100


def test_a_stopped_run_is_resumed_by_the_next(conn: psycopg.Connection[Any]) -> None:
    """Stopping between batches (deadline) loses nothing; the next run finishes the work."""
    events_table(conn, expired=5000, fresh=100)
    first = purge.purge_expired_rows(
        conn, [policy(batch_size=500, pause_s=0.05)], now=NOW, deadline=time.monotonic() + 0.3
    )
    done = first.results[0].rows
    assert not first.complete
    assert 0 < done < 5000 and done % 500 == 0
    assert 5000 - done == expired_left(conn)
    second = purge.purge_expired_rows(conn, [policy(batch_size=500, pause_s=0)], now=NOW)
    assert second.complete
    assert 5000 - done == second.results[0].rows
    assert count(conn, "SELECT count(*) FROM events") == 100


def slow_deletes(conn: psycopg.Connection[Any], seconds_per_row: float) -> None:
    conn.execute(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_sleep({seconds_per_row}); RETURN OLD; END $$"
    )
    conn.execute("CREATE TRIGGER slow BEFORE DELETE ON events FOR EACH ROW EXECUTE FUNCTION slow()")


def test_statement_timeout_halves_the_batch(conn: psycopg.Connection[Any]) -> None:
    events_table(conn, expired=300, fresh=10)
    slow_deletes(conn, 0.003)  # 800 rows: 2.4 s, 400: 1.2 s, 200: 0.6 s, 100: 0.3 s
    with capture_logs() as logs:
        report = purge.purge_expired_rows(
            conn, [policy(batch_size=800, pause_s=0, lock_timeout_s=0.1, statement_timeout_s=0.5)], now=NOW
        )
    assert [e["batch_size"] for e in logs if e["event"] == "retention_batch_shrunk"] == [400, 200, 100]
    assert [r.rows for r in report.results] == [300]
    assert expired_left(conn) == 0


def test_too_slow_even_in_small_batches_is_a_clear_permanent_error(conn: psycopg.Connection[Any]) -> None:
    events_table(conn, expired=300, fresh=10)
    slow_deletes(conn, 0.01)
    with pytest.raises(PermanentError, match=r"deleting 100 rows from public\.events took longer than 0\.5 s; add an"):
        purge.purge_expired_rows(
            conn, [policy(batch_size=200, pause_s=0, lock_timeout_s=0.1, statement_timeout_s=0.5)], now=NOW
        )
    assert expired_left(conn) == 300


def test_rows_still_referenced_are_a_clear_permanent_error(conn: psycopg.Connection[Any]) -> None:
    events_table(conn, expired=10, fresh=1)
    conn.execute("CREATE TABLE replies (id int PRIMARY KEY, event_id bigint REFERENCES events (id))")
    conn.execute("INSERT INTO replies VALUES (1, 5)")
    with pytest.raises(PermanentError, match=r"cannot delete expired rows from public\.events: update or delete"):
        purge.purge_expired_rows(conn, [policy()], now=NOW)
    assert expired_left(conn) == 10


@pytest.mark.parametrize(
    "catalog_policy",
    [
        policy("pg_authid", "rolvaliduntil"),  # unqualified: resolves to pg_catalog on every search_path
        PurgePolicy("pg_authid", "rolvaliduntil", Duration(days=1), schema="pg_catalog"),
    ],
)
def test_system_catalogs_are_refused_however_named(conn: psycopg.Connection[Any], catalog_policy: PurgePolicy) -> None:
    """pg_authid holds the roles; a role whose password expired long ago must not be deleted."""
    conn.execute("CREATE ROLE ry_expired_role VALID UNTIL '2001-01-01'")
    try:
        with pytest.raises(ConfigError) as caught:
            purge.purge_expired_rows(conn, [catalog_policy], now=NOW)
        assert ["in the system schema 'pg_catalog'"] == [
            p[p.index("in the system") : p.index("';") + 1] for p in caught.value.problems
        ]
        assert 1 == count(conn, "SELECT count(*) FROM pg_roles WHERE rolname = 'ry_expired_role'")
    finally:
        conn.execute("DROP ROLE ry_expired_role")
