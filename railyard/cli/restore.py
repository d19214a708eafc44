"""``railyard restore``: a backup into a database, in one transaction or in parallel."""

from __future__ import annotations

import contextlib
import sys

import click

from jobs.backup.restore import restore_backup
from railyard.cli.context import CliContext
from railyard.cli.terminal import progress_printer, warn_password_in_argv
from railyard.core import progress
from railyard.core.conninfo import Conninfo
from railyard.core.pgtools import PgTarget


@click.command()
@click.argument("backup_id")
@click.option(
    "--target-url",
    required=True,
    metavar="URL",
    envvar="RESTORE_TARGET_URL",
    help="Database to restore into (or RESTORE_TARGET_URL; keep passwords out of argv with PGPASSWORD).",
)
@click.option(
    "--database", metavar="NAME", help="With 'latest': the newest backup of this series (default: DATABASE_URL's)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force-production", is_flag=True, help="Allow restoring over a production database (ENVIRONMENT=production)."
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    metavar="N",
    help="pg_restore jobs for a large backup into an empty database (default RESTORE_JOBS, else the CPU count).",
)
@click.pass_obj
def restore(
    obj: CliContext,
    backup_id: str,
    target_url: str,
    database: str | None,
    yes: bool,
    force_production: bool,
    jobs: int | None,
) -> None:
    """Restore BACKUP_ID (or 'latest') into --target-url: in one transaction, or with --jobs
    connections when the backup is large and the target empty (on failure, what it created is dropped)."""
    settings = obj.settings
    Conninfo.parse(target_url, "--target-url (RESTORE_TARGET_URL)")  # a clear error before anything else
    target = PgTarget(target_url)
    warn_password_in_argv(click.get_current_context(), "target_url", target_url, "RESTORE_TARGET_URL")
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Restore {backup_id} into {target.dbname!r} at {target.host}? Existing objects of the backup "
            "will be dropped and recreated",
            abort=True,
        )
    printer = progress_printer(settings, "restore")
    with printer.line if printer else contextlib.nullcontext():
        result = restore_backup(
            settings,
            backup_id,
            target_url,
            database=database,
            force_production=force_production,
            on_progress=printer,
            jobs=jobs,
        )
    size = progress.human_bytes(result.bytes)
    from_copy = (
        " from the copy (the primary's dump was missing or failed its checksum)" if result.source != "primary" else ""
    )
    click.echo(f"restored {result.backup_id}{from_copy} into {result.target} ({size} in {result.duration_s:.1f}s)")
