"""``railyard schedule list|run``: the scheduler's entries, their next and last runs; run one now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
import redis

from railyard.cli.context import CliContext
from scheduler import manual, overview
from scheduler.schedule import Entry


def _declared(obj: CliContext) -> tuple[Entry, ...]:
    return manual.declared(obj.settings)


def _when(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%d %H:%M %Z")


@click.group()
def schedule() -> None:
    """The scheduler's entries (backups, retention, verification) and their runs."""


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of entries.")
@click.pass_obj
def list_entries(obj: CliContext, as_json: bool) -> None:
    """Each entry: id, cron, time zone, next run (UTC and local), last run and its outcome."""
    declared = _declared(obj)
    connection = redis.Redis.from_url(obj.settings.redis_url)
    try:
        statuses = overview.describe(
            connection,
            declared,
            environment=obj.settings.environment,
            now=datetime.now(UTC),
            serializer=obj.settings.serializer,
        )
    finally:
        connection.close()
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
        return
    rows = [("ID", "CRON", "TIMEZONE", "NEXT RUN (UTC)", "NEXT RUN (LOCAL)", "LAST RUN", "STATE")]
    for status in statuses:
        entry, last = status.entry, status.last_run
        rows.append(
            (
                entry.id,
                entry.cron,
                entry.timezone,
                _when(status.next_run, "UTC"),
                _when(status.next_run, entry.timezone),
                "never" if last is None else f"{_when(last.fired_at, 'UTC')} {last.reason}: {last.outcome}",
                status.state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for status in statuses:
        warning = status.slower_than_period()
        if warning:
            click.echo(f"warning: {warning}", err=True)


@schedule.command("run")
@click.argument("entry_id", metavar="ID")
@click.pass_obj
def run_entry(obj: CliContext, entry_id: str) -> None:
    """Enqueue entry ID's job now, unless its work for the current period is already enqueued."""
    result = manual.run_now(obj.settings, entry_id, datetime.now(UTC))
    if result.enqueued:
        click.echo(f"enqueued {result.job_id} ({result.entry.func})")
    else:
        click.echo(f"already enqueued for this period: {result.job_id} ({result.outcome}); nothing new enqueued")
