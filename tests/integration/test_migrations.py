"""Migrations against a real PostgreSQL: ledger, rollback, no-transaction, lock timeouts, drift, down, backup first."""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobs.migrations.apply import MigrationFailed
from jobs.migrations.config import MigrationConfig
from jobs.migrations.lock import LOCK_KEY
from jobs.migrations.plan import APP, BUILTIN, AcceptSpec
from jobs.migrations.runner import BUILTIN_DIR, Migrator, PlanError, UpOptions, sources_for
from railyard.core.errors import LockBusyError, PermanentError, RetryableError
from railyard.core.settings import Settings

pytestmark = pytest.mark.timeout(60)


def rows(database_url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def ledger(database_url: str) -> list[tuple[str, int, str]]:
    return [
        (str(r[0]), int(r[1]), str(r[2]))
        for r in rows(
            database_url, "SELECT namespace, version, name FROM railyard_migrations ORDER BY applied_at, 1, 2"
        )
    ]


def table_exists(database_url: str, name: str) -> bool:
    return bool(rows(database_url, "SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0])


@dataclass
class Env:
    database_url: str
    app_dir: Path
    builtin_dir: Path
    tmp_path: Path

    def write(self, name: str, text: str, *, builtin: bool = False) -> Path:
        path = (self.builtin_dir if builtin else self.app_dir) / name
        path.write_text(text)
        return path

    def migrator(self, settings: Settings | None = None, **config: Any) -> Migrator:
        defaults: dict[str, Any] = {
            "migrations_dir": self.app_dir,
            "migrations_dir_set": True,
            "lock_wait_s": 10.0,
            "lock_timeout_s": 2.0,
            "retry_backoff_s": 0.05,
            "lock_retries": 2,
        }
        cfg = MigrationConfig(**{**defaults, **config})
        return Migrator(
            settings or Settings(database_url=self.database_url),
            cfg,
            sources=sources_for(cfg, builtin_dir=self.builtin_dir),
            run_by="test",
        )


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Env:
    app_dir = tmp_path / "migrations"
    builtin_dir = tmp_path / "builtin"
    app_dir.mkdir()
    builtin_dir.mkdir()
    return Env(database_url, app_dir, builtin_dir, tmp_path)


def test_up_applies_in_order_records_the_ledger_and_is_idempotent(env: Env) -> None:
    """Railyard's own first, then the app's, each recorded with checksum, duration and who applied it."""
    env.write("0001_railyard_things.sql", "CREATE TABLE railyard_things (id int PRIMARY KEY);", builtin=True)
    env.write(
        "0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY, email text);\n-- migrate:down\nDROP TABLE users;"
    )
    env.write(
        "0002_seed.py",
        "def upgrade(conn):\n"
        "    conn.execute(\"INSERT INTO users VALUES (1, 'a%b')\")\n"
        "    conn.execute('INSERT INTO railyard_things VALUES (1)')\n",
    )
    env.write("0003_like.sql", "UPDATE users SET email = 'x' WHERE email LIKE 'a%';")

    result = env.migrator().up()

    assert [(BUILTIN, 1), (APP, 1), (APP, 2), (APP, 3)] == [(s.namespace, s.version) for s in result.steps]
    assert [(BUILTIN, 1, "0001_railyard_things.sql"), (APP, 1, "0001_users.sql"), (APP, 2, "0002_seed.py"),
            (APP, 3, "0003_like.sql")] == ledger(env.database_url)  # fmt: skip
    assert [("x",)] == rows(env.database_url, "SELECT email FROM users")
    checksum, duration_ms, applied_by = rows(
        env.database_url, "SELECT checksum, duration_ms, applied_by FROM railyard_migrations WHERE version = 2"
    )[0]
    import hashlib

    assert hashlib.sha256((env.app_dir / "0002_seed.py").read_bytes()).hexdigest() == checksum
    assert duration_ms >= 0
    assert "test on " in applied_by

    again = env.migrator().up()
    assert [] == again.steps
    assert 4 == len(ledger(env.database_url))


def test_session_settings_do_not_leak_from_one_migration_to_the_next(env: Env) -> None:
    env.write("0001_schema.sql", "CREATE SCHEMA other;\nSET search_path = other;\nSET lock_timeout = 0;\n")
    env.write("0002_t.sql", "CREATE TABLE t (id int);")
    env.write(
        "0003_check.py", "def upgrade(conn):\n    assert conn.execute('SHOW lock_timeout').fetchone()[0] == '2s'\n"
    )
    env.migrator().up()
    assert [("public",)] == rows(
        env.database_url, "SELECT table_schema FROM information_schema.tables WHERE table_name = 't'"
    )


def test_failing_migration_rolls_back_completely_and_the_next_run_resumes_from_it(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    env.write("0002_b.sql", "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n\nSELECT 1/0;\n")
    env.write("0003_c.sql", "CREATE TABLE c (id int);")

    with pytest.raises(MigrationFailed) as caught:
        env.migrator().up()
    message = str(caught.value)
    assert "0002_b.sql at statement 3 (line 4) failed: division by zero [SQLSTATE 22012]" in message
    assert "rolled back and not recorded" in message
    assert [(APP, 1, "0001_a.sql")] == ledger(env.database_url)
    assert (True, False, False) == tuple(table_exists(env.database_url, t) for t in ("a", "b", "c"))

    env.write("0002_b.sql", "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n")
    result = env.migrator().up()
    assert [2, 3] == [s.version for s in result.steps]
    assert [(1,)] == rows(env.database_url, "SELECT id FROM b")


def test_python_migration_raising_is_rolled_back_with_its_line(env: Env) -> None:
    env.write(
        "0001_py.py",
        "def upgrade(conn):\n    conn.execute('CREATE TABLE p (id int)')\n    raise ValueError('bad data in row 7')\n",
    )
    with pytest.raises(MigrationFailed) as caught:
        env.migrator().up()
    assert "0001_py.py (line 3) raised ValueError: bad data in row 7; it was rolled back and not recorded" in str(
        caught.value
    )
    assert not table_exists(env.database_url, "p")
    assert [] == ledger(env.database_url)


def test_create_index_concurrently_runs_outside_a_transaction(env: Env) -> None:
    env.write(
        "0001_t.sql",
        "CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 1000) g;",
    )
    env.write(
        "0002_idx.sql",
        "-- railyard:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v_idx ON t (v);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);\n"
        "-- migrate:down\n"
        "DROP INDEX CONCURRENTLY IF EXISTS t_v_idx;\nDROP INDEX CONCURRENTLY IF EXISTS t_id_idx;\n",
    )
    env.migrator().up()
    valid = rows(
        env.database_url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname LIKE 't\\_%%idx' ORDER BY 1",
    )
    assert [("t_id_idx", True), ("t_v_idx", True)] == valid
    assert [(APP, 1, "0001_t.sql"), (APP, 2, "0002_idx.sql")] == ledger(env.database_url)

    env.migrator().down(1)
    assert [] == rows(env.database_url, "SELECT 1 FROM pg_class WHERE relname IN ('t_v_idx', 't_id_idx')")
    assert [(APP, 1, "0001_t.sql")] == ledger(env.database_url)


def test_failing_non_transactional_migration_is_reported_clearly(env: Env) -> None:
    """Statements before the failure took effect: the message says so, and nothing is recorded."""
    env.write("0001_t.sql", "CREATE TABLE t (id int);")
    env.write(
        "0002_nt.sql",
        "-- railyard:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n\n"
        "CREATE INDEX CONCURRENTLY x ON nope (id);\n",
    )
    with pytest.raises(MigrationFailed) as caught:
        env.migrator().up()
    message = str(caught.value)
    assert (
        "applying" in message
        and '0002_nt.sql at statement 2 (line 4) failed: relation "nope" does not exist' in message
    )
    assert "without a transaction, so statements 1-1 had taken effect and were not undone" in message
    assert [(APP, 1, "0001_t.sql")] == ledger(env.database_url)


def test_interrupted_create_index_concurrently_is_not_recorded(env: Env) -> None:
    """A unique index that fails leaves an INVALID index; re-running with IF NOT EXISTS must not hide it."""
    env.write("0001_t.sql", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (1);")
    env.write(
        "0002_uniq.sql",
        "-- railyard:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_uniq ON t (id);\n",
    )
    with pytest.raises(MigrationFailed) as first:
        env.migrator().up()
    # At once: the statement's own line (not the directive's), and the index it left with the way out.
    assert "0002_uniq.sql at statement 1 (line 2) failed: could not create unique index" in str(first.value)
    assert "It left INVALID index(es) public.t_uniq, which the next run would refuse: first " in str(first.value)
    assert str(first.value).endswith("DROP INDEX CONCURRENTLY public.t_uniq;")

    _, plans = env.migrator().plans()
    (problem,) = [p for plan in plans for p in plan.problems]
    assert problem.startswith("INVALID index public.t_uniq (left by a failed or interrupted CREATE INDEX")
    assert "named by pending" in problem and "run DROP INDEX CONCURRENTLY public.t_uniq; then migrate up" in problem

    with pytest.raises(MigrationFailed) as caught:
        env.migrator().up()
    assert "left INVALID index(es) public.t_uniq" in str(caught.value)
    assert "DROP INDEX CONCURRENTLY public.t_uniq;" in str(caught.value)
    assert [(APP, 1, "0001_t.sql")] == ledger(env.database_url)

    with psycopg.connect(env.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM t WHERE ctid <> (SELECT min(ctid) FROM t)")
        conn.execute("DROP INDEX CONCURRENTLY public.t_uniq")
    env.migrator().up()
    assert [(APP, 1, "0001_t.sql"), (APP, 2, "0002_uniq.sql")] == ledger(env.database_url)


def test_an_invalid_index_no_pending_migration_names_is_a_status_warning(env: Env) -> None:
    env.write("0001_t.sql", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (1);")
    env.migrator().up()
    with psycopg.connect(env.database_url, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute('CREATE UNIQUE INDEX CONCURRENTLY "Odd name" ON t (id)')
    _, plans = env.migrator().plans()
    assert [] == [p for plan in plans for p in plan.problems]
    (warning,) = [w for plan in plans for w in plan.warnings if "INVALID" in w]
    assert warning.endswith('drop it with DROP INDEX CONCURRENTLY public."Odd name";')


class TableHolder:
    """Another session that holds a lock on a table, as a long transaction of the application would."""

    def __init__(self, database_url: str, statement: str):
        self.conn = psycopg.connect(database_url)
        self.conn.execute(statement)  # type: ignore[arg-type]

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.conn.commit)
        timer.start()
        return timer

    def close(self) -> None:
        self.conn.close()


class Prober(threading.Thread):
    """Runs a query over and over and records the longest it ever waited."""

    def __init__(self, database_url: str, query: str):
        super().__init__(daemon=True)
        self.database_url, self.query = database_url, query
        self.longest_s = 0.0
        self.count = 0
        self.errors: list[BaseException] = []
        self.done = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while not self.done.is_set():
                    t0 = time.monotonic()
                    conn.execute(self.query)  # type: ignore[arg-type]
                    self.longest_s = max(self.longest_s, time.monotonic() - t0)
                    self.count += 1
                    time.sleep(0.01)
        except BaseException as exc:
            self.errors.append(exc)


@pytest.fixture
def busy_table(env: Env) -> Iterator[Callable[[], TableHolder]]:
    env.write("0001_t.sql", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
    env.migrator().up()
    holders: list[TableHolder] = []

    def hold() -> TableHolder:
        holders.append(TableHolder(env.database_url, "SELECT count(*) FROM t"))
        return holders[-1]

    yield hold
    for h in holders:
        h.close()


def test_lock_timeout_retries_and_readers_writers_never_wait_longer_than_it(
    env: Env, busy_table: Callable[[], TableHolder]
) -> None:
    """A transaction reads t and stays open; ALTER TABLE t queues behind it and would block every other
    query on t. With lock_timeout the migration gives up, lets them through, retries, and succeeds once
    the transaction ends; no reader or writer waited much longer than the lock timeout."""
    lock_timeout_s = 0.5
    env.write("0002_alter.sql", "ALTER TABLE t ADD COLUMN note text;")
    holder = busy_table()
    reader = Prober(env.database_url, "SELECT count(*) FROM t")
    writer = Prober(env.database_url, "INSERT INTO t (id) VALUES (2)")
    reader.start()
    writer.start()
    timer = holder.release_after(2.5)
    try:
        result = env.migrator(lock_timeout_s=lock_timeout_s, lock_retries=10, retry_backoff_s=0.3).up()
    finally:
        reader.done.set()
        writer.done.set()
        reader.join()
        writer.join()
        timer.join()
    assert ([], []) == (reader.errors, writer.errors)
    assert [2] == [s.version for s in result.steps]
    assert result.steps[0].attempts >= 3  # 2.5 s held; each attempt waits 0.5 s, then 0.3+ s backoff
    assert reader.count > 20 and writer.count > 20
    # they did queue behind the migration's lock request (so the bound is what is being measured) ...
    assert max(reader.longest_s, writer.longest_s) > lock_timeout_s / 4
    # ... and never for much longer than the lock timeout
    assert reader.longest_s < lock_timeout_s + 0.4
    assert writer.longest_s < lock_timeout_s + 0.4
    assert [("note",)] == rows(
        env.database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 't' AND column_name = 'note'",
    )


def test_lock_timeout_gives_up_after_the_retries_with_a_retryable_error(
    env: Env, busy_table: Callable[[], TableHolder]
) -> None:
    env.write("0002_alter.sql", "ALTER TABLE t ADD COLUMN note text;")
    busy_table()
    t0 = time.monotonic()
    with pytest.raises(LockBusyError) as caught:
        env.migrator(lock_timeout_s=0.2, lock_retries=2, retry_backoff_s=0.1).up()
    elapsed = time.monotonic() - t0
    assert isinstance(caught.value, RetryableError)
    message = str(caught.value)
    assert "applying " in message and "0002_alter.sql gave up after 3 attempt(s)" in message
    assert "waited more than 0.2 s (MIGRATION_LOCK_TIMEOUT_S)" in message
    assert "rolled back and not recorded" in message
    assert 3 * 0.2 + 0.1 + 0.2 <= elapsed < 5
    assert [(APP, 1, "0001_t.sql")] == ledger(env.database_url)


def test_non_transactional_statement_is_retried_alone_after_a_lock_timeout(
    env: Env, busy_table: Callable[[], TableHolder]
) -> None:
    env.write(
        "0002_nt.sql",
        "-- railyard:no-transaction\nCREATE TABLE counter (n int);\nINSERT INTO counter VALUES (1);\n"
        "ALTER TABLE t ADD COLUMN note text;\n",
    )
    holder = busy_table()
    timer = holder.release_after(1.0)
    result = env.migrator(lock_timeout_s=0.3, lock_retries=10, retry_backoff_s=0.1).up()
    timer.join()
    assert result.steps[0].attempts >= 2
    assert [(1,)] == rows(env.database_url, "SELECT n FROM counter")  # earlier statements ran once


def test_statement_timeout_stops_a_slow_migration(env: Env) -> None:
    env.write("0001_slow.sql", "CREATE TABLE s (id int);\nSELECT pg_sleep(5);")
    with pytest.raises(MigrationFailed) as caught:
        env.migrator(statement_timeout_s=0.3).up()
    expected = "0001_slow.sql at statement 2 (line 2) was cancelled (statement timeout MIGRATION_STATEMENT_TIMEOUT_S"
    assert expected in str(caught.value)
    assert not table_exists(env.database_url, "s")


def hold_migration_lock(database_url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url, autocommit=True, application_name="other-migrator")
    conn.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
    return conn


def test_second_migrator_waits_for_the_lock_and_is_not_cut_short_by_lock_timeout(env: Env) -> None:
    """The lock wait has its own limit: a 0.2 s lock_timeout does not apply while waiting 1 s for it."""
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    other = hold_migration_lock(env.database_url)
    threading.Timer(1.0, other.close).start()
    t0 = time.monotonic()
    result = env.migrator(lock_timeout_s=0.2, lock_wait_s=10).up()
    assert time.monotonic() - t0 >= 0.9
    assert [1] == [s.version for s in result.steps]


def test_lock_wait_limit_gives_a_clear_retryable_error(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    other = hold_migration_lock(env.database_url)
    try:
        pid = other.info.backend_pid
        with pytest.raises(LockBusyError) as caught:
            env.migrator(lock_wait_s=0.3).up()
    finally:
        other.close()
    assert f"another migrator (pid {pid}) held the migration lock" in str(caught.value)
    assert "raise MIGRATION_LOCK_WAIT_S" in str(caught.value)
    assert not table_exists(env.database_url, "a")


def test_drift_stops_the_run_until_accepted(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    env.migrator().up()
    env.write("0001_a.sql", "CREATE TABLE a (id int, extra text);")
    env.write("0002_b.sql", "CREATE TABLE b (id int);")
    with pytest.raises(PlanError) as caught:
        env.migrator().up()
    assert "0001_a.sql changed after it was applied" in str(caught.value)
    assert "--accept-checksum 1" in str(caught.value)
    assert not table_exists(env.database_url, "b")

    result = env.migrator().up(UpOptions(accept=AcceptSpec.parse(["1"])))
    assert [2] == [s.version for s in result.steps]
    assert env.migrator().plans()[1][1].drifted == ()


def test_out_of_order_refused_unless_allowed(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    env.write("0003_c.sql", "CREATE TABLE c (id int);")
    env.migrator().up()
    env.write("0002_b.sql", "CREATE TABLE b (id int);")
    with pytest.raises(PlanError, match=re.escape("0002_b.sql is pending but numbered below 0003_c.sql")):
        env.migrator().up()
    result = env.migrator().up(UpOptions(allow_out_of_order=True))
    assert [2] == [s.version for s in result.steps]


def test_up_to_a_target_then_the_rest(env: Env) -> None:
    for n in (1, 2, 3):
        env.write(f"000{n}_m.sql", f"CREATE TABLE m{n} (id int);")
    assert [1, 2] == [s.version for s in env.migrator().up(UpOptions(target=2)).steps]
    assert [3] == [s.version for s in env.migrator().up().steps]


def test_down_reverts_newest_first_and_refuses_a_missing_down(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    env.write("0002_b.sql", "CREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;")
    env.write(
        "0003_c.py",
        "def upgrade(conn):\n    conn.execute('CREATE TABLE c (id int)')\n"
        "def downgrade(conn):\n    conn.execute('DROP TABLE c')\n",
    )
    env.migrator().up()
    result = env.migrator().down(2)
    assert [(3, "down"), (2, "down")] == [(s.version, s.direction) for s in result.steps]
    assert [(APP, 1, "0001_a.sql")] == ledger(env.database_url)
    assert (True, False, False) == tuple(table_exists(env.database_url, t) for t in ("a", "b", "c"))

    with pytest.raises(PlanError, match=re.escape("0001_a.sql has no down migration; add a '-- migrate:down' section")):
        env.migrator().down(1)
    assert table_exists(env.database_url, "a")


def test_malformed_file_name_stops_the_run_before_anything_runs(env: Env) -> None:
    env.write("0001_a.sql", "CREATE TABLE a (id int);")
    env.write("add_b.sql", "CREATE TABLE b (id int);")
    with pytest.raises(PlanError, match=re.escape("add_b.sql is not named like a migration; rename it NNNN_slug.sql")):
        env.migrator().up()
    assert not table_exists(env.database_url, "a")


def test_explicit_missing_directory_is_an_error_default_one_is_empty(env: Env) -> None:
    with pytest.raises(PlanError, match="does not exist; create it or set MIGRATIONS_DIR"):
        env.migrator(migrations_dir=env.tmp_path / "nope").up()
    result = env.migrator(migrations_dir=env.tmp_path / "nope", migrations_dir_set=False).up()
    assert [] == result.steps


def password_url(database_url: str, password: str) -> str:
    return database_url.replace("postgres@", f"postgres:{password}@", 1)


def test_migrate_command_failure_and_password_in_argv_are_refused(env: Env) -> None:
    failing = (sys.executable, "-c", "import sys; print('no such revision'); sys.exit(3)")
    with pytest.raises(PermanentError, match=r"MIGRATE_COMMAND \(.*\) exited with status 3"):
        env.migrator(migrate_command=failing).up()

    url = password_url(env.database_url, "s3cr3t-pw")
    settings = Settings(database_url=url)
    with pytest.raises(PermanentError, match="MIGRATE_COMMAND contains the database password") as caught:
        env.migrator(settings, migrate_command=("dbmate", "--url", url, "up")).up()
    assert "s3cr3t-pw" not in str(caught.value)


def test_apply_builtin_applies_railyards_own_migrations(database_url: str) -> None:
    """Whatever NNNN_slug.sql files ship in jobs/migrations/builtin are applied and recorded once."""
    from jobs.migrations import apply_builtin

    shipped = sorted(p.name for p in BUILTIN_DIR.glob("*.sql"))
    first = apply_builtin(database_url)
    assert shipped == [s["name"] for s in first["steps"]]
    assert [] == apply_builtin(database_url)["steps"]
    assert shipped == [name for ns, _, name in ledger(database_url) if ns == BUILTIN]


def test_backup_first_creates_a_listed_backup_before_the_first_statement(env: Env, monkeypatch) -> None:
    """In production a backup is taken (and listed) before anything is applied; its id is returned."""
    from jobs.backup.catalog import list_backups
    from railyard.core.storage import StorageLocation, open_store

    storage = env.tmp_path / "backups"
    monkeypatch.setenv("BACKUP_STORAGE_URL", str(storage))
    settings = Settings(database_url=env.database_url, environment="production", backup_storage_url=str(storage))
    env.write("0001_created_by_migration.sql", "CREATE TABLE created_by_migration (id int);")

    result = env.migrator(settings).up()

    location = StorageLocation.parse(str(storage))
    database = env.database_url.rsplit("/", 1)[1]
    backups = list_backups(open_store(location), location, environment="production", database=database)
    assert [result.backup_id] == [b.id for b in backups]
    manifest = backups[0]
    applied_at = rows(env.database_url, "SELECT applied_at FROM railyard_migrations WHERE version = 1")[0][0]
    assert manifest.finished <= applied_at
    assert "public.created_by_migration" not in (manifest.row_counts or {})
    assert table_exists(env.database_url, "created_by_migration")


def test_a_version_too_large_for_bigint_stops_the_run_before_any_migration(env: Env) -> None:
    env.write("0001_t.sql", "CREATE TABLE t (id int);")
    env.write(f"{2**63}_huge.sql", "SELECT 1;")
    with pytest.raises(PlanError, match=r"is too large \(the ledger stores versions as bigint"):
        env.migrator().up()
    assert not table_exists(env.database_url, "t")


@pytest.mark.parametrize("transactional", [True, False])
def test_a_commit_after_a_keyword_named_table_is_refused_before_anything_runs(env: Env, transactional: bool) -> None:
    """`CREATE TABLE begin (atomic int)` is no BEGIN ATOMIC body: the COMMIT after it is seen, nothing applied."""
    directive = "" if transactional else "-- railyard:no-transaction\n"
    env.write("0001_first.sql", "CREATE TABLE first_ok (id int);")
    env.write("0002_begin.sql", f"{directive}CREATE TABLE begin (atomic int);\nCOMMIT;\nCREATE TABLE after (id int);\n")
    line = 2 if transactional else 3
    with pytest.raises(PlanError, match=re.escape(f"0002_begin.sql line {line}: COMMIT is not allowed in a migration")):
        env.migrator().up()
    assert (False, False, False) == tuple(table_exists(env.database_url, t) for t in ("first_ok", "begin", "after"))


def test_the_job_timeout_ends_the_external_migrator_and_its_children_before_the_lock_is_released(
    env: Env, tmp_path: Path
) -> None:
    """rq's job timeout (an exception raised by SIGALRM in the work horse) stops the whole command first."""
    from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

    pids = tmp_path / "pids"
    command = ("sh", "-c", f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; wait")

    def lock_holders() -> int:
        found = rows(
            env.database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", (LOCK_KEY[1],)
        )
        return int(found[0][0])

    with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(2, JobTimeoutException):
        env.migrator(migrate_command=command).up()
    shell, grandchild = (int(p) for p in pids.read_text().split())
    assert [False, False] == [Path(f"/proc/{pid}").exists() for pid in (shell, grandchild)]
    assert 0 == lock_holders()
