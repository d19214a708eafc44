"""``railyard health``: is every service Railyard needs reachable, and can it back up and restore?"""

from __future__ import annotations

import json

import click

from railyard.cli.context import CliContext
from railyard.ops.health import run_checks


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON object.")
@click.pass_obj
def health(obj: CliContext, as_json: bool) -> None:
    """Check Redis, PostgreSQL, storage and the client tools; exit 0 only if all pass.

    For each configured database, the pg_tools line gives the server's version and the
    pg_dump and pg_restore that would be used, and fails when none fits the server.
    """
    results = run_checks(obj.settings)
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [r.to_json() for r in results]}, indent=2))
    else:
        for result in results:
            mark = "ok  " if result.ok else "FAIL"
            click.echo(f"{mark} {result.name:<9} {result.detail}")
    if not ok:
        raise SystemExit(1)
