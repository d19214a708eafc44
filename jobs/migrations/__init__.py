"""The migration job (``jobs.migrate.run_migrations``, queue ``migration``) and in-process helpers.

``railyard migrate up`` and this job do the same thing: Railyard's own migrations, then the
application's (MIGRATIONS_DIR, or MIGRATE_COMMAND), under one advisory lock, backup first
in production. See docs/migrations.md.
"""

from __future__ import annotations

from typing import Any

from jobs.migrations.config import MigrationConfig
from railyard.core.settings import Settings

# The engine (runner, plan, PostgreSQL's grammar through pglast) is imported by the entries below when
# they run: every import of a submodule, such as the settings check's of jobs.migrations.config, runs
# this file first.


def run_migrations(
    to: int | None = None,
    allow_out_of_order: bool = False,
    backup: bool | None = None,
    accept_checksums: list[str] | None = None,
) -> dict[str, Any]:
    """RQ job: apply pending migrations to the worker's DATABASE_URL; return what ran."""
    from jobs.migrations.plan import AcceptSpec
    from jobs.migrations.runner import Migrator, UpOptions

    settings = Settings.from_env()
    config = MigrationConfig.from_env()
    options = UpOptions(
        target=to,
        allow_out_of_order=allow_out_of_order,
        backup=backup,
        accept=AcceptSpec.parse(accept_checksums or ()),
    )
    return Migrator(settings, config, run_by="job").up(options).as_dict()


def apply_builtin(database_url: str) -> dict[str, Any]:
    """Apply Railyard's own migrations (the tables its jobs use) to ``database_url``; no backup."""
    from jobs.migrations.runner import Migrator, UpOptions, sources_for

    settings = Settings.from_env()
    config = MigrationConfig.from_env()
    migrator = Migrator(
        settings, config, database_url=database_url, sources=sources_for(config, app=False), run_by="builtin"
    )
    return migrator.up(UpOptions(backup=False)).as_dict()
