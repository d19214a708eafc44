"""``railyard health``: is every service Railyard needs reachable?"""

from __future__ import annotations

import click

from railyard.cli.context import CliContext
from railyard.health import run_checks


@click.command()
@click.pass_obj
def health(obj: CliContext) -> None:
    """Check Redis, PostgreSQL and storage; exit 0 only if all are reachable."""
    results = run_checks(obj.settings)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        click.echo(f"{mark} {result.name:<9} {result.detail}")
    if not all(r.ok for r in results):
        raise SystemExit(1)
