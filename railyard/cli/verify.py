"""``railyard verify``: restore backups into scratch databases and check them."""

from __future__ import annotations

import dataclasses
import json

import click

from jobs.backup.verify import describe_failures, verify_backups
from railyard.cli.context import CliContext


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
