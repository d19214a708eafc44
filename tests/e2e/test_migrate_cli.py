"""`railyard migrate` as a deploy pipeline runs it, and the migration job on a real `rq worker`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from rq.job import Job, JobStatus

from railyard.core.client import enqueue
from tests.conftest import ROOT, VENV_BIN
from tests.e2e.conftest import child_env, run_cli

pytestmark = pytest.mark.timeout(120)


def cli_argv(*args: str) -> list[str]:
    return [str(VENV_BIN / "railyard"), *args]


def events(stderr: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert 1 == len(lines), result.stderr
    return lines[0]


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    """A migrations directory and the environment a deploy step would have."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    return directory, {"DATABASE_URL": database_url, "MIGRATIONS_DIR": str(directory)}


def test_two_runners_started_together_apply_each_migration_exactly_once(app, database_url) -> None:
    """Both exit 0; the second waits for the first's lock and then finds nothing to do."""
    directory, env = app
    (directory / "0001_log.sql").write_text("CREATE TABLE applied_log (migration int NOT NULL);")
    for n in (2, 3, 4):
        (directory / f"000{n}_step.sql").write_text(f"INSERT INTO applied_log VALUES ({n});\nSELECT pg_sleep(0.4);\n")
    procs = [
        subprocess.Popen(
            cli_argv("migrate", "up"), env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [0, 0] == [p.returncode for p in procs], outputs
    assert [(2,), (3,), (4,)] == rows(database_url, "SELECT migration FROM applied_log ORDER BY 1")
    assert [1, 2, 3, 4] == [
        r[0] for r in rows(database_url, "SELECT version FROM railyard_migrations WHERE namespace = 'app' ORDER BY 1")
    ]
    applied_counts = sorted(out.count("applied app ") for out, _ in outputs)
    assert [0, 4] == applied_counts
    waited = [any(e.get("event") == "migration_lock_waiting" for e in events(err)) for _, err in outputs]
    assert 1 == sum(waited), outputs


def test_status_exit_codes_and_json(app, database_url) -> None:
    """0 up to date, 3 pending, 1 drifted: a pipeline can gate on it."""
    directory, env = app
    (directory / "0001_a.sql").write_text("CREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n")

    pending = run_cli("migrate", "status", "--json", env=env)
    assert 3 == pending.returncode, pending.stderr
    report = json.loads(pending.stdout)
    assert ("pending", ["0001_a.sql"], []) == (
        report["status"],
        [m["name"] for m in report["pending"] if m["namespace"] == "app"],
        report["applied"],
    )
    assert [("app", 1, True, True)] == [
        (m["namespace"], m["version"], m["transactional"], m["has_down"])
        for m in report["pending"]
        if m["namespace"] == "app"  # Railyard's own migrations are pending too
    ]

    assert 0 == run_cli("migrate", "up", env=env).returncode
    current = run_cli("migrate", "status", env=env)
    assert 0 == current.returncode, current.stderr
    assert "0001_a.sql" in current.stdout and "0 pending, 0 drifted: up_to_date" in current.stdout

    (directory / "0001_a.sql").write_text("CREATE TABLE a (id bigint);\n-- migrate:down\nDROP TABLE a;\n")
    drifted = run_cli("migrate", "status", "--json", env=env)
    assert 1 == drifted.returncode
    report = json.loads(drifted.stdout)
    assert ("problem", ["0001_a.sql"]) == (report["status"], [m["name"] for m in report["drifted"]])
    assert "--accept-checksum 1" in report["problems"][0]


def test_plan_shows_the_statements_and_changes_nothing(app, database_url) -> None:
    directory, env = app
    (directory / "0001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (directory / "0002_idx.sql").write_text(
        "-- railyard:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\n"
    )
    result = run_cli("migrate", "plan", env=env)
    assert 0 == result.returncode, result.stderr
    assert "== app 0001_a.sql (SQL, in a transaction)\nCREATE TABLE a (id int);" in result.stdout
    assert "== app 0002_idx.sql (SQL, no transaction)\n-- railyard:no-transaction" in result.stdout
    assert "backup first: no (ENVIRONMENT=development)" in result.stdout
    assert [(False,)] == rows(database_url, "SELECT to_regclass('public.railyard_migrations') IS NOT NULL")


def test_accepting_a_changed_checksum_is_explicit_and_logged(app, database_url) -> None:
    directory, env = app
    (directory / "0001_a.sql").write_text("CREATE TABLE a (id int);\n")
    assert 0 == run_cli("migrate", "up", env=env).returncode
    (directory / "0001_a.sql").write_text("-- creates a\nCREATE TABLE a (id int);\n")

    refused = run_cli("migrate", "up", env=env)
    assert 1 == refused.returncode
    assert "0001_a.sql changed after it was applied" in error_line(refused)

    accepted = run_cli("migrate", "up", "--accept-checksum", "1", env=env)
    assert 0 == accepted.returncode, accepted.stderr
    logged = [e for e in events(accepted.stderr) if e.get("event") == "migration_checksum_accepted"]
    assert [(1, "0001_a.sql", "warning")] == [(e["version"], e["migration"], e["level"]) for e in logged]
    assert 0 == run_cli("migrate", "status", env=env).returncode


def write_all(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


@pytest.mark.parametrize(
    ("before", "after", "command", "message"),
    [
        pytest.param(
            {"0001_a.sql": "CREATE TABLE a (id int);"},
            {"0001_a.sql": "CREATE TABLE a (id int, b int);"},
            ("up",),
            "0001_a.sql changed after it was applied (sha256 ",
            id="drift",
        ),
        pytest.param(
            {"0001_a.sql": "CREATE TABLE a (id int);", "0003_c.sql": "CREATE TABLE c (id int);"},
            {"0002_b.sql": "CREATE TABLE b (id int);"},
            ("up",),
            "0002_b.sql is pending but numbered below 0003_c.sql, the newest applied migration; renumber it above, "
            "or run with --allow-out-of-order",
            id="out-of-order",
        ),
        pytest.param(
            {"0001_a.sql": "CREATE TABLE a (id int);"},
            {},
            ("down",),
            "0001_a.sql has no down migration; add a '-- migrate:down' section to revert it (nothing was reverted)",
            id="missing-down",
        ),
        pytest.param(
            {},
            {"0001-add-users.sql": "CREATE TABLE users (id int);"},
            ("up",),
            "0001-add-users.sql is not named like a migration; rename it NNNN_slug.sql (e.g. 0007_add_orders.sql)",
            id="malformed-name",
        ),
        pytest.param(
            {},
            {"0001_backfill.py": "def upgrade(conn):\n    conn.execute('SELECT 1')\n    raise RuntimeError('no rows')"},
            ("up",),
            "0001_backfill.py (line 3) raised RuntimeError: no rows; it was rolled back and not recorded",
            id="python-raising",
        ),
    ],
)
def test_each_problem_is_one_clear_line_and_a_nonzero_exit(
    app, before: dict[str, str], after: dict[str, str], command: tuple[str, ...], message: str
) -> None:
    directory, env = app
    write_all(directory, before)
    if before:
        assert 0 == run_cli("migrate", "up", env=env).returncode
    write_all(directory, after)
    result = run_cli("migrate", *command, env=env)
    assert 1 == result.returncode, result.stderr
    assert message in error_line(result)


MIGRATOR_SCRIPT = """
import os, sys, psycopg
url = os.environ["DATABASE_URL"]
print("argv:", " ".join(sys.argv))
print("cmdline:", open("/proc/self/cmdline", "rb").read().replace(b"\\0", b" ").decode())
print("url:", url)
with psycopg.connect(url, autocommit=True) as conn:
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
        (0x5241494C, 0x4D4947),
    ).fetchone()[0]
    print("migration lock held:", held)
    conn.execute("CREATE TABLE from_external (id int)")
"""


def test_migrate_command_runs_under_the_lock_with_output_in_the_log_and_no_password_in_argv(
    app, database_url, tmp_path
) -> None:
    """An external migrator gets DATABASE_URL in its environment only; its output lines become log events."""
    password = "pw-never-in-argv-5150"
    url = database_url.replace("postgres@", f"postgres:{password}@", 1)  # trust auth: accepted, unused
    script = tmp_path / "migrator.py"
    script.write_text(MIGRATOR_SCRIPT)
    directory, env = app
    (directory / "0001_not_mine.sql").write_text("CREATE TABLE not_mine (id int);")
    env = {**env, "DATABASE_URL": url, "MIGRATE_COMMAND": shlex.join([sys.executable, str(script)])}

    result = run_cli("migrate", "up", env=env)
    assert 0 == result.returncode, result.stderr
    lines = [e["line"] for e in events(result.stderr) if e.get("event") == "migrate_command_output"]
    assert "migration lock held: 1" in lines
    assert 2 == len([line for line in lines if line.startswith(("argv:", "cmdline:"))])
    assert password not in result.stderr + result.stdout  # not in argv, and redacted where the tool echoed it
    assert f"url: {url.replace(password, '***')}" in lines
    assert [(True, False)] == rows(
        database_url, "SELECT to_regclass('from_external') IS NOT NULL, to_regclass('not_mine') IS NOT NULL"
    )


def test_migration_job_on_a_real_worker(app, database_url, redis_url, redis_conn: Redis) -> None:
    """jobs.migrate.run_migrations on queue `migration`, run by the worker the Procfile starts."""
    directory, env = app
    (directory / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    job = enqueue("jobs.migrate.run_migrations", redis_conn)
    assert "migration" == job.origin
    worker_line = next(
        line.partition(":")[2] for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:")
    )
    argv = [*shlex.split(worker_line), "--burst"]
    argv[0] = str(VENV_BIN / argv[0])
    worker = subprocess.run(
        argv,
        env=child_env(**env, REDIS_URL=redis_url, WORKER_QUEUES="migration"),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        check=False,
    )
    assert 0 == worker.returncode, worker.stderr[-3000:]
    done = Job.fetch(job.id, connection=redis_conn)
    assert JobStatus.FINISHED == done.get_status(), worker.stderr[-3000:]
    result = done.return_value()
    assert [("app", 1, "0001_a.sql")] == [
        (s["namespace"], s["version"], s["name"]) for s in result["steps"] if s["namespace"] == "app"
    ]
    assert [(1,)] == rows(database_url, "SELECT version FROM railyard_migrations WHERE namespace = 'app'")


FIRST_MIGRATOR = "echo $$ >> {pids}; sleep 25 & echo $! >> {pids}; wait; echo first-finished >> {log}"
SECOND_MIGRATOR = (
    'for p in $(cat {pids}); do if kill -0 "$p" 2>/dev/null; then echo "overlap $p"; fi; done >> {log}; '
    "echo second-ran >> {log}"
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_migrate_up_ends_its_external_migrator_and_a_second_run_never_overlaps_it(
    app, tmp_path, sig: int
) -> None:
    """A `sh -c` migrator and its grandchild die with `railyard migrate up`; the next run starts after them."""
    _, env = app
    pids, log = tmp_path / "pids", tmp_path / "log"
    first = subprocess.Popen(
        cli_argv("migrate", "up"),
        env=child_env(**env, MIGRATE_COMMAND=shlex.join(["sh", "-c", FIRST_MIGRATOR.format(pids=pids, log=log)])),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(pids.read_text().split() if pids.exists() else []) < 2:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        shell, grandchild = (int(p) for p in pids.read_text().split())
        first.send_signal(sig)
        _, stderr = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate()

    second = run_cli(
        "migrate",
        "up",
        env={**env, "MIGRATE_COMMAND": shlex.join(["sh", "-c", SECOND_MIGRATOR.format(pids=pids, log=log)])},
    )
    assert 0 == second.returncode, second.stderr
    assert "second-ran\n" == log.read_text()  # no overlap line, and the first never finished
    assert [] == [pid for pid in (shell, grandchild) if Path(f"/proc/{pid}").exists()]
    if sig == signal.SIGTERM:
        assert 143 == first.returncode
        assert "error: stopped by SIGTERM before finishing" in stderr
        released = [e["event"] for e in events(stderr) if e.get("event", "").startswith("migration_lock_")]
        assert ["migration_lock_acquired", "migration_lock_released"] == released
