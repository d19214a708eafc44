"""``railyard backup``: back up a database now, or enqueue a backup for the worker."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from jobs.backup.config import BackupOptions
from jobs.backup.dump import backup_all_databases, backup_database
from jobs.backup.series import resolve_source, url_source
from railyard.cli.context import CliContext
from railyard.cli.terminal import progress_printer, warn_password_in_argv
from railyard.core import progress
from railyard.core.errors import LockBusyError
from railyard.core.settings import Settings

if TYPE_CHECKING:
    import redis

# `backup --enqueue` when this period's backup is already queued: not an error, but nothing was done.
EXIT_ALREADY_QUEUED = 3


@click.command()
@click.option("--database-url", metavar="URL", help="Database to back up (default: DATABASE_URL).")
@click.option("--database", metavar="NAME", help="Another database on DATABASE_URL's server, by name.")
@click.option("--schema-only", is_flag=True, help="Dump only the schema, no data.")
@click.option("--data-only", is_flag=True, help="Dump only the data, no schema.")
@click.option("--table", "tables", multiple=True, metavar="PATTERN", help="Only these tables (repeatable).")
@click.option("--exclude-table", "exclude_tables", multiple=True, metavar="PATTERN", help="Skip these tables.")
@click.option("--schema", "schemas", multiple=True, metavar="PATTERN", help="Only these schemas (repeatable).")
@click.option("--exclude-schema", "exclude_schemas", multiple=True, metavar="PATTERN", help="Skip these schemas.")
@click.option("--pg-dump-arg", "extra_args", multiple=True, metavar="ARG", help="Extra pg_dump flag (allow-listed).")
@click.option("--all-databases", is_flag=True, help="Every connectable database on the server, plus its globals.")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Enqueue on the backup queue instead of running here; prints the job id, or 'already queued: ID' and "
    "exits 3 when this period's backup was already enqueued.",
)
@click.option(
    "--extra",
    is_flag=True,
    help="With --enqueue: enqueue even if the schedule's backup for this period was already enqueued.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_obj
def backup(
    obj: CliContext,
    database_url: str | None,
    database: str | None,
    all_databases: bool,
    enqueue: bool,
    extra: bool,
    as_json: bool,
    **selection: Any,  # what goes into the backup: BackupOptions' fields, named by the options above
) -> None:
    """Back up a PostgreSQL database now (no Redis needed) and print its id and key."""
    settings = obj.settings
    warn_password_in_argv(click.get_current_context(), "database_url", database_url, "DATABASE_URL")
    if database_url and database:
        raise click.UsageError("pass either --database-url or --database, not both")
    options = BackupOptions(**selection)
    if enqueue:
        if database_url:
            raise click.UsageError(
                "--enqueue backs up a database on the worker's own DATABASE_URL server; "
                "use --database NAME instead of --database-url (job arguments must not carry credentials)"
            )
        if options.extra_args:
            raise click.UsageError("--pg-dump-arg cannot be combined with --enqueue")
        _enqueue(settings, database, options, all_databases, extra)
        return
    source = url_source(database_url) if database_url else resolve_source(settings, database)
    if all_databases:
        manifests, globals_key = backup_all_databases(settings, source, options=options)
        for manifest in manifests:
            click.echo(f"{manifest.id}\t{manifest.key}")
        if globals_key:
            click.echo(f"globals\t{globals_key}")
        return
    printer = progress_printer(settings, "backup")
    try:
        with printer.line if printer else contextlib.nullcontext():
            manifest = backup_database(settings, source=source, options=options, on_progress=printer)
    except LockBusyError as exc:
        click.echo(f"skipped: {exc}", err=True)
        return
    if as_json:
        click.echo(manifest.to_json().decode())
    else:
        click.echo(f"{manifest.id}\t{manifest.key}")
        click.echo(
            f"backed up {manifest.database}: {progress.human_bytes(manifest.raw_size)} dumped, "
            f"{progress.human_bytes(manifest.size)} stored in {manifest.duration_s:.1f}s",
            err=True,
        )


def _enqueue(
    settings: Settings, database: str | None, options: BackupOptions, all_databases: bool, extra: bool
) -> None:
    """``backup --enqueue``: Redis and the job client are loaded here, not for a backup taken in this process."""
    import redis

    conn = redis.Redis.from_url(settings.redis_url)
    if options == BackupOptions() and not extra:
        fired = _fire_scheduled_backup(settings, conn, database, all_databases)
        if fired is not None and not fired.enqueued:
            click.echo(f"already queued: {fired.job_id}")
            click.echo(
                f"this period's backup was already enqueued as {fired.job_id}; nothing new was enqueued "
                "(pass --extra for another one)",
                err=True,
            )
            raise SystemExit(EXIT_ALREADY_QUEUED)
        if fired is not None:
            click.echo(fired.job_id)
            return
    job = _enqueue_backup(settings, conn, database, options, all_databases)
    click.echo(job.id)


def _fire_scheduled_backup(settings: Settings, conn: redis.Redis, database: str | None, all_databases: bool) -> Any:
    """A plain backup the schedule also takes: held to the schedule's one-per-period claim."""
    from railyard.core.schedule_config import ScheduleConfig
    from scheduler.schedule import backup_entry_for, build_schedule, targets_from_settings
    from scheduler.trigger import fire

    kwargs: dict[str, Any] = {"all_databases": True} if all_databases else {}
    if database:
        kwargs["database"] = database
    entries = build_schedule(ScheduleConfig.from_env(), targets_from_settings(settings), ())
    entry = backup_entry_for(entries, kwargs)
    if entry is None:
        return None
    return fire(
        conn,
        entry,
        environment=settings.environment,
        now=datetime.now(UTC),
        reason="manual",
        serializer=settings.serializer,
    )


def _enqueue_backup(
    settings: Settings, conn: redis.Redis, database: str | None, options: BackupOptions, all_databases: bool
) -> Any:
    from railyard.core.client import enqueue_backup

    return enqueue_backup(
        conn,
        serializer=settings.serializer,
        database=database,
        all_databases=all_databases,
        **options.as_job_arguments(),
    )
