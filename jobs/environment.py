"""Every setting Railyard reads, validated at once: what each entry point checks before it starts.

The worker (``worker.rq_config``), the scheduler (``python -m scheduler``) and the CLI call
:func:`validate_environment` before doing anything, so a bad ``BACKUP_ZSTD_LEVEL``,
``BACKUP_ROW_COUNTS`` or ``BACKUP_CRON`` stops them at start-up, listed with every other
problem, instead of failing the first job that reads it. Only entry points import this
module: it reaches every job family's configuration.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from railyard.core.conninfo import conninfo_problems
from railyard.core.errors import ConfigError, RailyardError


def _readers() -> list[tuple[str, Callable[[Mapping[str, str]], Any]]]:
    from jobs.audio.config import AudioConfig
    from jobs.backup.config import BackupConfig
    from jobs.backup.copy_config import CopyConfig
    from jobs.backup.encryption import EncryptionConfig
    from jobs.backup.series import series_problems
    from jobs.migrations.config import MigrationConfig
    from jobs.retention.config import backup_policy_from_env, copy_policy_from_env
    from jobs.retention.purge_config import CONFIG_VARIABLE, config_from_env
    from railyard.core.alert_config import AlertConfig
    from railyard.core.databases import named_database_urls
    from railyard.core.schedule_config import ScheduleConfig
    from railyard.core.settings import Settings
    from railyard.core.storage.lock import object_lock_from_env
    from railyard.core.worker_config import WorkerConfig

    def purge_config(env: Mapping[str, str]) -> Any:
        return config_from_env(env) if env.get(CONFIG_VARIABLE, "").strip() else None

    def connection_strings(env: Mapping[str, str]) -> None:
        problems = []
        for name in ("VERIFY_DATABASE_URL", "RESTORE_TARGET_URL"):
            if env.get(name, "").strip():
                problems += conninfo_problems(name, env[name])
        if problems:
            raise ConfigError(problems)

    return [
        ("settings", Settings.from_env),
        ("alerts", AlertConfig.from_env),
        ("worker", WorkerConfig.from_env),
        ("backup", BackupConfig.from_env),
        ("schedule", ScheduleConfig.from_env),
        ("encryption", EncryptionConfig.from_env),
        ("migrations", MigrationConfig.from_env),
        ("backup retention", backup_policy_from_env),
        ("data retention", purge_config),
        ("databases", named_database_urls),
        ("series", series_problems),
        ("connection strings", connection_strings),
        ("audio", AudioConfig.from_env),
        ("object lock", object_lock_from_env),
        ("backup copy", CopyConfig.from_env),
        ("copy retention", copy_policy_from_env),
    ]


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with every setting in ``environ`` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    for _, read in _readers():
        try:
            read(env)
        except ConfigError as exc:
            problems += exc.problems
        except RailyardError as exc:
            problems.append(str(exc))
    return list(dict.fromkeys(problems))


def validate_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise one ConfigError listing every problem, if there is any."""
    problems = environment_problems(environ)
    if problems:
        raise ConfigError(problems)
