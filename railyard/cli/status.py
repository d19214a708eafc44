"""``railyard status``: one look at queues, workers, failed jobs, schedules and backups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from railyard.cli.context import CliContext
from railyard.core.alert_config import AlertConfig
from railyard.core.alerts import process_secrets, scrub
from railyard.core.durations import format_duration
from railyard.ops.status import collect
from railyard.ops.status_config import StatusConfig


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(timedelta(seconds=seconds))


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@click.pass_obj
def status(obj: CliContext, as_json: bool) -> None:
    """Queues, workers, failed jobs, schedules and the newest backup of each database.

    Exits 1 when a backup is older than BACKUP_STALE_AFTER (default 26h), the latest
    verification of a database failed, no worker was seen for STATUS_WORKER_MISSING_AFTER
    (default 10m), a declared schedule entry is not registered (STATUS_REQUIRE_SCHEDULE), or
    Redis or storage could not be read: run it from an external monitor.
    """
    settings = obj.settings
    report = collect(settings, AlertConfig.from_env(), datetime.now(UTC), StatusConfig.from_env())
    data = scrub(report.as_dict(), process_secrets())
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print(data)
    if data["problems"]:
        raise SystemExit(1)


def _print(data: dict[str, Any]) -> None:
    click.echo("QUEUES")
    for q in data["queues"]:
        click.echo(
            f"  {q['name']:<10} {q['depth']:>5} waiting (oldest {_age(q['oldest_waiting_s'])})"
            f"  {q['started']} running  {q['scheduled']} scheduled"
        )
    click.echo(f"WORKERS ({len(data['workers'])})")
    for w in data["workers"]:
        job = f"{w['current_func']} {w['current_job']} for {_age(w['running_s'])}" if w["current_job"] else "idle"
        click.echo(f"  {w['name']:<40} {w['state']:<10} {job}")
    failed = data["failed"]
    click.echo(f"FAILED JOBS ({failed['count']})")
    for f in failed["newest"]:
        click.echo(f"  {f['id']}  {f['func']}  {(f['failed_at'] or '')[:19]}  {f['error'][:160]}")
    click.echo(f"SCHEDULED ({len(data['scheduled'])})")
    for s in data["scheduled"]:
        last = s["last_run"]
        ran = "never run" if last is None else f"last {last['fired_at'][:19]} {last['reason']}: {last['outcome']}"
        click.echo(f"  {s['id']:<24} {s['job']:<36} {s['state']:<15} next {s['next_run_utc'][:19]}  {ran}")
    click.echo("BACKUPS")
    for b in data["backups"]:
        verified = b["verified"] or "not verified"
        mark = "STALE" if b["stale"] else "ok"
        click.echo(
            f"  {b['database']:<20} {mark:<5} {b['id'] or 'no backup':<36} age {_age(b['age_s']):<8} "
            f"{_size(b['size']):>9}  {verified}"
        )
    for w in data["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if data["problems"]:
        click.echo("PROBLEMS", err=True)
        for p in data["problems"]:
            click.echo(f"  {p}", err=True)
    else:
        click.echo("healthy")
