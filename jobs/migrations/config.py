"""Migration settings read from the environment; every problem is reported at once."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from railyard.core.envparse import parse_float
from railyard.core.errors import ConfigError

DEFAULT_MIGRATIONS_DIR = "migrations"
LOCK_WAIT_S = 600.0  # how long a second migrator waits for the first to finish
LOCK_TIMEOUT_S = 5.0  # longest a migration statement may wait for a table lock (and so block others)
STATEMENT_TIMEOUT_S = 0.0  # 0: no limit; long data migrations and CREATE INDEX CONCURRENTLY take their time
LOCK_RETRIES = 4  # retries of a migration after a lock timeout
RETRY_BACKOFF_S = 2.0
RETRY_BACKOFF_CAP_S = 60.0


@dataclass(frozen=True)
class MigrationConfig:
    migrations_dir: Path = Path(DEFAULT_MIGRATIONS_DIR)
    migrations_dir_set: bool = False  # set explicitly: a missing directory is then an error
    lock_wait_s: float = LOCK_WAIT_S
    lock_timeout_s: float = LOCK_TIMEOUT_S
    statement_timeout_s: float = STATEMENT_TIMEOUT_S
    lock_retries: int = LOCK_RETRIES
    retry_backoff_s: float = RETRY_BACKOFF_S
    migrate_command: tuple[str, ...] = ()  # external migrator argv, e.g. ("alembic", "upgrade", "head")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MigrationConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def seconds(name: str, default: float, *, zero: str | None) -> float:
            """A non-negative number of seconds; ``zero`` says what 0 means (None: 0 is not allowed)."""
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = parse_float(raw)
            except ValueError:
                value = -1.0
            if value < 0 or (value == 0 and zero is None) or value != value:
                floor = f">= 0 (0 {zero})" if zero else "> 0"
                problems.append(f"{name}={raw!r} is not a number of seconds {floor}; e.g. {name}={default:g}")
                return default
            return value

        directory = env.get("MIGRATIONS_DIR", "").strip()
        lock_wait_s = seconds("MIGRATION_LOCK_WAIT_S", LOCK_WAIT_S, zero="to not wait")
        lock_timeout_s = seconds("MIGRATION_LOCK_TIMEOUT_S", LOCK_TIMEOUT_S, zero=None)
        statement_timeout_s = seconds("MIGRATION_STATEMENT_TIMEOUT_S", STATEMENT_TIMEOUT_S, zero="for no limit")
        backoff_s = seconds("MIGRATION_RETRY_BACKOFF_S", RETRY_BACKOFF_S, zero="to retry at once")

        retries_raw = env.get("MIGRATION_LOCK_RETRIES", "").strip()
        retries = LOCK_RETRIES
        if retries_raw:
            if retries_raw.isascii() and retries_raw.isdigit():
                retries = int(retries_raw)
            else:
                problems.append(f"MIGRATION_LOCK_RETRIES={retries_raw!r} is not a whole number >= 0; e.g. 4")

        command: tuple[str, ...] = ()
        raw_command = env.get("MIGRATE_COMMAND", "").strip()
        if raw_command:
            try:
                command = tuple(shlex.split(raw_command))
            except ValueError as exc:
                problems.append(f"MIGRATE_COMMAND cannot be split into arguments ({exc}); check its quotes")

        if problems:
            raise ConfigError(problems)
        return cls(
            migrations_dir=Path(directory or DEFAULT_MIGRATIONS_DIR),
            migrations_dir_set=bool(directory),
            lock_wait_s=lock_wait_s,
            lock_timeout_s=lock_timeout_s,
            statement_timeout_s=statement_timeout_s,
            lock_retries=retries,
            retry_backoff_s=backoff_s,
            migrate_command=command,
        )
