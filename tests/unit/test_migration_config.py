"""Migration settings from the environment: defaults, values, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.migrations.config import MigrationConfig
from railyard.core.errors import ConfigError


def test_defaults() -> None:
    config = MigrationConfig.from_env({})
    assert (Path("migrations"), False, 5.0, 0.0, ()) == (
        config.migrations_dir,
        config.migrations_dir_set,
        config.lock_timeout_s,
        config.statement_timeout_s,
        config.migrate_command,
    )


def test_values() -> None:
    config = MigrationConfig.from_env(
        {
            "MIGRATIONS_DIR": "db/migrations",
            "MIGRATION_LOCK_WAIT_S": "30",
            "MIGRATION_LOCK_TIMEOUT_S": "1.5",
            "MIGRATION_STATEMENT_TIMEOUT_S": "600",
            "MIGRATION_LOCK_RETRIES": "2",
            "MIGRATION_RETRY_BACKOFF_S": "0",
            "MIGRATE_COMMAND": "alembic -c 'my config.ini' upgrade head",
        }
    )
    assert (Path("db/migrations"), True, 30.0, 1.5, 600.0, 2, 0.0) == (
        config.migrations_dir,
        config.migrations_dir_set,
        config.lock_wait_s,
        config.lock_timeout_s,
        config.statement_timeout_s,
        config.lock_retries,
        config.retry_backoff_s,
    )
    assert ("alembic", "-c", "my config.ini", "upgrade", "head") == config.migrate_command


def test_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        MigrationConfig.from_env(
            {
                "MIGRATION_LOCK_TIMEOUT_S": "0",
                "MIGRATION_LOCK_WAIT_S": "soon",
                "MIGRATION_STATEMENT_TIMEOUT_S": "-1",
                "MIGRATION_LOCK_RETRIES": "many",
                "MIGRATE_COMMAND": "alembic 'upgrade",
            }
        )
    assert [
        "MIGRATION_LOCK_WAIT_S='soon' is not a number of seconds >= 0 (0 to not wait); e.g. MIGRATION_LOCK_WAIT_S=600",
        "MIGRATION_LOCK_TIMEOUT_S='0' is not a number of seconds > 0; e.g. MIGRATION_LOCK_TIMEOUT_S=5",
        "MIGRATION_STATEMENT_TIMEOUT_S='-1' is not a number of seconds >= 0 (0 for no limit); "
        "e.g. MIGRATION_STATEMENT_TIMEOUT_S=0",
        "MIGRATION_LOCK_RETRIES='many' is not a whole number >= 0; e.g. 4",
        "MIGRATE_COMMAND cannot be split into arguments (No closing quotation); check its quotes",
    ] == caught.value.problems


@pytest.mark.parametrize("raw", ["\u00b9", "\uff12", "\u0663"])
def test_lock_retries_in_digits_other_than_ascii_are_a_problem(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MigrationConfig.from_env({"MIGRATION_LOCK_RETRIES": raw})
    assert [f"MIGRATION_LOCK_RETRIES={raw!r} is not a whole number >= 0; e.g. 4"] == caught.value.problems
