"""``railyard prune`` deletes backups; ``railyard purge`` (also ``railyard retention run``) deletes expired rows."""

from __future__ import annotations

import json
from collections.abc import Callable

import click
import redis

from jobs.retention import PRUNE_JOB, PURGE_JOB, prune_result, run_copy_prune, run_prune, run_purge
from jobs.retention.prune import PruneReport
from jobs.retention.purge import PurgeReport
from railyard.cli.context import CliContext
from railyard.core.client import enqueue

DRY_RUN_HELP = "Show what would be deleted; delete nothing."
ENQUEUE_HELP = "Enqueue on the retention queue instead of running here; prints the job id."


def _enqueue(obj: CliContext, func: str, dry_run: bool) -> None:
    conn = redis.Redis.from_url(obj.settings.redis_url)
    job = enqueue(func, conn, serializer=obj.settings.serializer, dry_run=dry_run)
    click.echo(job.id)


@click.command()
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (keep and delete lists).")
@click.option("--enqueue", "to_queue", is_flag=True, help=ENQUEUE_HELP)
@click.pass_obj
def prune(obj: CliContext, dry_run: bool, as_json: bool, to_queue: bool) -> None:
    """Delete backups the retention policy (BACKUP_KEEP_*) no longer keeps, and leftovers of crashed runs."""
    if to_queue:
        _enqueue(obj, PRUNE_JOB, dry_run)
        return
    report = run_prune(obj.settings, dry_run=dry_run)
    copied = run_copy_prune(obj.settings, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(prune_result(report, copied), indent=2))
    else:
        _print_prune(report)
        if copied is not None:
            click.echo("copy (BACKUP_COPY_STORAGE_URL):")
            _print_prune(copied)


def _print_prune(report: PruneReport) -> None:
    click.echo(f"backups of environment {report.environment!r} at {report.location}; policy: {report.policy}")
    group = None
    for decision in report.decisions:
        backup = decision.backup
        if (backup.environment, backup.database) != group:
            group = (backup.environment, backup.database)
            click.echo(f"{backup.database}:")
        fate = f"keep: {', '.join(decision.reasons)}" if decision.keep else "delete"
        if backup.key in report.locked:
            fate = f"kept: locked until {report.locked[backup.key].isoformat()} (the policy no longer keeps it)"
        click.echo(f"  {backup.id}  {fate}")
    for orphan in report.orphans:
        click.echo(f"orphan {orphan.key}  delete")
    for upload in report.incomplete_uploads:
        click.echo(f"incomplete upload {upload.key}  abort")
    for upload, why in report.uploads_left:
        click.echo(f"incomplete upload {upload.key}  left alone: {why}")
    for problem in report.problems:
        click.echo(f"{problem.kind} manifest {problem.key}  left alone: {problem.reason}")
    for stale in report.stale_globals:
        click.echo(f"globals {stale.key}  delete")
    backups = {d.backup.key for d in report.decisions}
    for key, until in report.locked.items():
        if key not in backups:
            click.echo(f"{key}  kept: locked until {until.isoformat()}")
    verb = "would delete" if report.dry_run else "deleted"
    locked = f" ({len(report.locked)} locked objects kept)" if report.locked else ""
    click.echo(
        f"kept {len(report.kept)} backups, {verb} {len(report.deleted)} backups, "
        f"{len(report.orphans)} orphans and {len(report.incomplete_uploads)} incomplete uploads{locked}",
        err=True,
    )


PURGE_HELP = "Delete rows past their maximum age (policies in the RETENTION_CONFIG file)."


def _purge(obj: CliContext, dry_run: bool, as_json: bool, to_queue: bool) -> None:
    if to_queue:
        _enqueue(obj, PURGE_JOB, dry_run)
        return
    report = run_purge(obj.settings, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_purge(report)


def _purge_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--enqueue", "to_queue", is_flag=True, help=ENQUEUE_HELP)(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(command)
    dry_run_help = "Count the rows each policy would delete; delete nothing."
    return click.option("--dry-run", is_flag=True, help=dry_run_help)(command)


@click.command(help=f"{PURGE_HELP}\n\nIn short batches that concurrent writers barely notice.")
@_purge_options
@click.pass_obj
def purge(obj: CliContext, dry_run: bool, as_json: bool, to_queue: bool) -> None:
    _purge(obj, dry_run, as_json, to_queue)


@click.group(help=f"{PURGE_HELP} The same as `railyard purge`, under its earlier name.")
def retention() -> None:
    pass


@retention.command("run")
@_purge_options
@click.pass_obj
def run(obj: CliContext, dry_run: bool, as_json: bool, to_queue: bool) -> None:
    """Delete expired rows in short batches that concurrent writers barely notice (= railyard purge)."""
    _purge(obj, dry_run, as_json, to_queue)


def _print_purge(report: PurgeReport) -> None:
    for r in report.results:
        where = f"{r.table}.{r.column} older than {r.max_age} (before {r.cutoff})"
        if report.dry_run:
            click.echo(f"{where}: would delete {r.rows} rows")
        else:
            rate = f", {r.rate_rows_s:,.0f} rows/s" if r.rows else ""
            tail = "" if r.complete else "; stopped early, the next run continues"
            click.echo(f"{where}: deleted {r.rows} rows in {r.duration_s:.1f} s{rate}{tail}")
        if not r.indexed:
            click.echo(f"warning: {r.table}.{r.column} has no index; each batch scans the table", err=True)
