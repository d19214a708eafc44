"""``railyard failed list|show|retry|purge``: failed jobs on Railyard's queues."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
import redis

from railyard.cli.context import CliContext
from railyard.core import failed_jobs
from railyard.core.alerts import process_secrets, scrub
from railyard.core.durations import parse_duration


def _connection(obj: CliContext) -> redis.Redis:
    return redis.Redis.from_url(obj.settings.redis_url)


@click.group()
def failed() -> None:
    """Jobs that failed for good (after their retries), on every Railyard queue."""


@failed.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_command(obj: CliContext, as_json: bool) -> None:
    """Failed jobs, newest first, with the first line of each error."""
    found = failed_jobs.failed_jobs(_connection(obj), serializer=obj.settings.serializer)
    described = [failed_jobs.describe(j).as_dict() for j in found]
    described = scrub(described, process_secrets())
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    if not described:
        click.echo("no failed jobs", err=True)
        return
    click.echo(f"{'ID':<38} {'QUEUE':<10} {'FUNC':<28} {'FAILED (UTC)':<20} ERROR")
    for f in described:
        when = (f["failed_at"] or "")[:19].replace("T", " ")
        click.echo(f"{f['id']:<38} {f['queue']:<10} {f['func']:<28} {when:<20} {f['error'][:200]}")


@failed.command("show")
@click.argument("job_id")
@click.pass_obj
def show_command(obj: CliContext, job_id: str) -> None:
    """One failed job: what it ran, with which arguments, and its full error."""
    conn = _connection(obj)
    job, _ = failed_jobs.find_failed(conn, job_id, serializer=obj.settings.serializer)
    data = {**failed_jobs.describe(job).as_dict(), "traceback": failed_jobs.exc_string(job)}
    click.echo(json.dumps(scrub(data, process_secrets()), indent=2))


@failed.command("retry")
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
@click.pass_obj
def retry_command(obj: CliContext, job_id: str | None, retry_all: bool) -> None:
    """Put JOB_ID (or, with --all, every failed job) back on its queue with a fresh retry budget."""
    if bool(job_id) == retry_all:
        raise click.UsageError("give a JOB_ID or --all (see `railyard failed list`)")
    conn = _connection(obj)
    if job_id:
        job = failed_jobs.retry(conn, job_id, serializer=obj.settings.serializer)
        click.echo(f"requeued {job.id} on {job.origin}")
        return
    retried, skipped = failed_jobs.retry_all(conn, serializer=obj.settings.serializer)
    for jid in retried:
        click.echo(f"requeued {jid}")
    for jid in skipped:
        click.echo(f"skipped {jid}: not a Railyard job (purge it instead)", err=True)
    click.echo(f"{len(retried)} requeued, {len(skipped)} skipped", err=True)


@failed.command("purge")
@click.option("--older-than", "older_than", required=True, metavar="DURATION", help="e.g. 7d, 12h, 30m.")
@click.pass_obj
def purge_command(obj: CliContext, older_than: str) -> None:
    """Delete failed jobs that failed more than DURATION ago."""
    age = parse_duration(older_than)
    removed = failed_jobs.purge(_connection(obj), age, datetime.now(UTC), serializer=obj.settings.serializer)
    click.echo(f"purged {len(removed)} failed jobs older than {older_than}")
