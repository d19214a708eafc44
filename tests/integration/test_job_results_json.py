"""Every registered job's return value survives RAILYARD_SERIALIZER=json unchanged.

rq stores a result that JSON cannot encode as the string "Unserializable return value", and
JSON turns tuples into lists: each job is run here on real services and its result compared
with itself after a JSON round trip. jobs.diagnostics.retry_probe only returns on a worker's
retry; tests/e2e/test_serializer.py reads its result back from a JSON worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rq.serializers import JSONSerializer

from jobs.audio import process_audio
from jobs.backup import run_backup
from jobs.backup.copy import copy_backup
from jobs.backup.dump import LOCK_KEY
from jobs.backup.staleness import check_stale_backups
from jobs.backup.summary import send_weekly_summary
from jobs.backup.verify import verify_backup
from jobs.diagnostics import ping
from jobs.migrations import run_migrations
from jobs.retention import prune_backups, purge_rows
from railyard.core import registry
from tests import audio_signals as sig

COVERED_ELSEWHERE = {"jobs.diagnostics.retry_probe"}


def round_tripped(value: Any) -> Any:
    return JSONSerializer.loads(JSONSerializer.dumps(value))


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The worker's environment: a seeded database, local storage, Redis."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO events (id) SELECT generate_series(1, 50)")
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_notes.sql").write_text("CREATE TABLE notes (id int PRIMARY KEY);\n")
    retention = tmp_path / "retention.toml"
    retention.write_text('[[policy]]\ntable = "events"\ncolumn = "created_at"\nmax_age = "90d"\n')
    variables = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "backups"),
        "AUDIO_STORAGE_URL": str(tmp_path / "audio"),
        "MIGRATIONS_DIR": str(migrations),
        "RETENTION_CONFIG": str(retention),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    yield tmp_path


def audio_file(database_url: str, storage: Path) -> str:
    sig.create_audio_table(database_url)
    source = storage / "uploads" / "tone.wav"
    source.parent.mkdir(parents=True)
    source.write_bytes(sig.encode(sig.at_level(sig.tone(44100, 1), -20), 44100, "wav"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO audio_files (source_key) VALUES ('uploads/tone.wav') RETURNING id::text")
        return str(row.fetchone()[0])  # type: ignore[index]


def run_each_job(database_url: str, tmp_path: Path) -> dict[str, list[Any]]:
    """Each registered job's return values, in the shapes it can return."""
    backup = run_backup(tables=["public.*"])
    with psycopg.connect(database_url, autocommit=True) as held:
        held.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        skipped = run_backup()
    runs: dict[str, Callable[[], list[Any]]] = {
        "jobs.diagnostics.ping": lambda: [ping()],
        "jobs.backup.run_backup": lambda: [backup, skipped],
        "jobs.verify.verify_backup": lambda: [verify_backup(), verify_backup(backup_id=backup["id"])],
        "jobs.migrate.run_migrations": lambda: [run_migrations(), run_migrations()],
        "jobs.audio.process_audio": lambda: [process_audio(audio_file(database_url, tmp_path / "audio"))],
        "jobs.retention.prune_backups": lambda: [prune_backups(dry_run=True), prune_backups()],
        "jobs.retention.purge_rows": lambda: [purge_rows(dry_run=True), purge_rows()],
        "jobs.staleness.check_stale_backups": lambda: [check_stale_backups()],
        "jobs.summary.send_weekly_summary": lambda: [send_weekly_summary()],
        "jobs.copy.copy_backup": lambda: [copy_backup(key=backup["key"])],
    }
    return {func: run() for func, run in runs.items()}


def test_every_jobs_result_survives_json(env: Path, database_url: str) -> None:
    results = run_each_job(database_url, env)
    assert set(registry.REGISTRY) == set(results) | COVERED_ELSEWHERE
    for func, values in results.items():
        for value in values:
            assert value == round_tripped(value), func
    assert results["jobs.backup.run_backup"][1]["skipped"] is True
    assert "passed" == results["jobs.verify.verify_backup"][0]["verified"][0]["result"]
    steps = results["jobs.migrate.run_migrations"][0]["steps"]
    assert [("app", 1)] == [(s["namespace"], s["version"]) for s in steps if s["namespace"] == "app"]
    assert "processed" == results["jobs.audio.process_audio"][0]["outcome"]


def test_a_whole_server_backups_result_survives_json(
    pg_password_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_password_url)
    monkeypatch.setenv("BACKUP_STORAGE_URL", str(tmp_path / "backups"))
    result = run_backup(all_databases=True)
    assert "postgres" in [b["database"] for b in result["backups"]]
    assert result == round_tripped(result)
