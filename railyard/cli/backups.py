"""``railyard backup``, ``railyard backups list|show`` and ``railyard restore``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
import redis

from jobs.backup.catalog import Manifest, find_backup, read_catalog
from jobs.backup.config import BackupOptions
from jobs.backup.copy_config import CopyConfig
from jobs.backup.dump import backup_all_databases, backup_database
from jobs.backup.restore import restore_backup
from jobs.backup.series import default_series, resolve_source, url_source
from jobs.backup.verify import describe_failures, read_verifications, verify_backups
from railyard.cli.context import CliContext
from railyard.core import progress
from railyard.core.client import enqueue_backup
from railyard.core.conninfo import Conninfo, password_forms
from railyard.core.errors import LockBusyError, RailyardError, one_line
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from railyard.core.storage import open_backup_store

# `backup --enqueue` when this period's backup is already queued: not an error, but nothing was done.
EXIT_ALREADY_QUEUED = 3


class _Printer:
    """A progress callback drawing one status line on stderr: ``(done, ..., elapsed_s)``, or from a
    backup ``(raw, stored, elapsed_s, database_size)``, which adds percent and ETA."""

    def __init__(self, label: str):
        self.label = label
        self.line = progress.StatusLine(sys.stderr)

    def __call__(self, done: int, *rest: float) -> None:
        if len(rest) == 3:
            _, elapsed, total = rest
            self.line.show(progress.progress_text(self.label, done, elapsed, int(total)))
        else:
            self.line.show(progress.progress_text(self.label, done, rest[-1] if rest else 0.0))


def _progress_printer(settings: Settings, label: str) -> _Printer | None:
    """None in JSON-log mode or when stderr is not a terminal."""
    if settings.log_format == "json" or not sys.stderr.isatty():
        return None
    return _Printer(label)


def warn_password_in_argv(ctx: click.Context, param: str, url: str | None, variable: str) -> None:
    """Passwords in command-line arguments are visible to every user of the machine (ps, /proc)."""
    if url and password_forms(url) and ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE:
        click.echo(
            f"warning: the URL passed with --{param.replace('_', '-')} contains a password, which other processes "
            f"can read from this command's arguments; set {variable} or PGPASSWORD instead",
            err=True,
        )


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
        return
    source = url_source(database_url) if database_url else resolve_source(settings, database)
    if all_databases:
        manifests, globals_key = backup_all_databases(settings, source, options=options)
        for manifest in manifests:
            click.echo(f"{manifest.id}\t{manifest.key}")
        if globals_key:
            click.echo(f"globals\t{globals_key}")
        return
    printer = _progress_printer(settings, "backup")
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
    return enqueue_backup(
        conn,
        serializer=settings.serializer,
        database=database,
        all_databases=all_databases,
        **options.as_job_arguments(),
    )


@click.group()
def backups() -> None:
    """List and inspect backups."""


def _summary(manifest: Manifest) -> dict[str, Any]:
    return dataclasses.asdict(manifest)


@backups.command("list")
@click.option("--database", metavar="NAME", help="Only backups of this series (a source's name).")
@click.option("--all-environments", is_flag=True, help="Include every environment, not only ENVIRONMENT's.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of manifests.")
@click.pass_obj
def list_command(obj: CliContext, database: str | None, all_environments: bool, as_json: bool) -> None:
    """List usable backups, newest first, then the manifests that are not used and why."""
    settings = obj.settings
    store, location = open_backup_store(settings)
    environment = None if all_environments else settings.environment
    catalog = read_catalog(store, location, environment=environment)
    found = [m for m in catalog.backups if database is None or m.series_name == database]
    problems = [p for p in catalog.problems if database is None or p.series == database]
    verified = read_verifications(store, location)
    copies = _copied(settings, environment)
    if copies is not None:
        primary_ids = {(m.environment, m.id) for m in found}
        found += [
            m for key, m in copies.items() if key not in primary_ids and (database is None or m.series_name == database)
        ]
        found.sort(key=lambda m: (m.finished, m.id), reverse=True)
    where = {
        m.id: _where(m, primary_ids={(p.environment, p.id) for p in catalog.backups}, copies=copies) for m in found
    }
    if as_json:
        for problem in problems:
            click.echo(f"warning: {problem.kind} manifest not used: {problem.reason}", err=True)
        click.echo(
            json.dumps(
                [{**_summary(m), "verification": verified.get(m.key), "where": where[m.id]} for m in found], indent=2
            )
        )
        return
    if not found and not problems:
        click.echo(f"no backups at {location} for environment {settings.environment!r}", err=True)
        return
    if found:
        click.echo(f"{'ID':<40} {'SERIES':<20} {'FINISHED (UTC)':<20} {'SIZE':>10}  {'WHERE':<8} VERIFIED")
    for m in found:
        finished = m.finished.strftime("%Y-%m-%d %H:%M:%S")
        marker = verified.get(m.key)
        status = f"{marker['result']} {marker['verified_at'][:10]}" if marker else "-"
        size = progress.human_bytes(m.size)
        click.echo(f"{m.id:<40} {m.series_name:<20} {finished:<20} {size:>10}  {where[m.id]:<8} {status}")
    if problems:
        click.echo("not used (never restored, verified or deleted):")
    for problem in problems:
        click.echo(f"  {problem.kind:<8} {problem.key}: {problem.reason}")


def _copied(settings: Settings, environment: str | None) -> dict[tuple[str, str], Manifest] | None:
    """The usable backups at BACKUP_COPY_STORAGE_URL by (environment, id), or None without a copy."""
    config = CopyConfig.from_env()
    if config is None:
        return None
    store = config.open_store(settings)
    try:
        catalog = read_catalog(store, config.location, environment=environment)
    except RailyardError as exc:
        click.echo(f"warning: the copy at {config.location} cannot be read: {one_line(exc)}", err=True)
        return {}
    return {(m.environment, m.id): m for m in catalog.backups}


def _where(
    manifest: Manifest, *, primary_ids: set[tuple[str, str]], copies: dict[tuple[str, str], Manifest] | None
) -> str:
    """``primary``, ``copy`` or ``both``: where a usable copy of the backup exists."""
    key = (manifest.environment, manifest.id)
    in_copy = copies is not None and key in copies and copies[key].sha256 == manifest.sha256
    if key in primary_ids:
        return "both" if in_copy else "primary"
    return "copy"


@backups.command("show")
@click.argument("backup_id")
@click.option(
    "--database", metavar="NAME", help="With 'latest': the newest backup of this series (default: DATABASE_URL's)."
)
@click.pass_obj
def show_command(obj: CliContext, backup_id: str, database: str | None) -> None:
    """Print one backup's manifest (BACKUP_ID or 'latest')."""
    settings = obj.settings
    store, location = open_backup_store(settings)
    manifest = find_backup(
        store,
        location,
        backup_id,
        environment=settings.environment,
        database=database,
        default_series=default_series(settings),
    )
    click.echo(manifest.to_json().decode())


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
    printer = _progress_printer(settings, "restore")
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


@click.command()
@click.argument("backup_id", required=False)
@click.option("--database", metavar="NAME", help="Only backups of this database.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_obj
def verify(obj: CliContext, backup_id: str | None, database: str | None, as_json: bool) -> None:
    """Restore BACKUP_ID (default: the newest of each database) into a scratch database and check it.

    Compares every table's row count with the manifest and checks the sha256 end to end;
    the scratch database (VERIFY_DATABASE_URL's server, default DATABASE_URL's) is always
    dropped. Exits 1 and lists what differs when a check fails.
    """
    results = verify_backups(obj.settings, backup_id, database)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        for r in results:
            from_copy = " (from the copy)" if r.source != "primary" else ""
            click.echo(
                f"{r.result:<7} {r.backup_id}{from_copy}  {r.tables_compared} tables compared in {r.duration_s:.1f}s"
            )
    failed = [r for r in results if not r.passed]
    if failed:
        click.echo(f"error: verification failed: {describe_failures(failed)}", err=True)
        raise SystemExit(1)
