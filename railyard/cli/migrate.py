"""``railyard migrate``: status, plan, up and down for schema migrations (see docs/migrations.md)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

from jobs.migrations.config import MigrationConfig
from jobs.migrations.files import MigrationFile
from jobs.migrations.plan import (
    EXIT_PENDING,
    EXIT_PROBLEM,
    EXIT_UP_TO_DATE,
    AcceptSpec,
    AppliedMigration,
    Plan,
    status_exit_code,
)
from jobs.migrations.runner import Migrator, RunResult, UpOptions
from railyard.cli.context import CliContext

STATUS_WORDS = {EXIT_UP_TO_DATE: "up_to_date", EXIT_PENDING: "pending", EXIT_PROBLEM: "problem"}


def _migrator(obj: CliContext) -> Migrator:
    return Migrator(obj.settings, MigrationConfig.from_env(), run_by="cli")


def _accept_option(func: Any) -> Any:
    return click.option(
        "--accept-checksum",
        "accept",
        multiple=True,
        metavar="N",
        help="Accept that applied migration N was edited: record its new checksum (logged). Repeatable; "
        "railyard:N for Railyard's own.",
    )(func)


def _backup_option(func: Any) -> Any:
    return click.option(
        "--backup/--no-backup",
        default=None,
        help="Back up the database before the first statement (default: only when ENVIRONMENT=production).",
    )(func)


@click.group()
def migrate() -> None:
    """Schema migrations from MIGRATIONS_DIR (or MIGRATE_COMMAND), one migrator at a time."""


@migrate.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(obj: CliContext, as_json: bool) -> None:
    """Applied, pending and drifted migrations; exit 0 up to date, 3 pending, 1 drift or error."""
    migrator = _migrator(obj)
    database, plans = migrator.plans()
    code = status_exit_code(plans)
    command = migrator.config.migrate_command
    if as_json:
        click.echo(json.dumps(_status_json(database, plans, code, command), indent=2))
    else:
        _print_status(database, plans, code, command)
    raise SystemExit(code)


def _up_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options of `migrate plan` and `migrate up`, handed to ``func`` as one UpOptions, ``options``."""

    @click.option("--to", "target", type=int, metavar="N", help="Only up to the application's migration N.")
    @click.option("--allow-out-of-order", is_flag=True, help="Apply pending migrations numbered below applied ones.")
    @_backup_option
    @_accept_option
    @functools.wraps(func)
    def command(
        *args: Any,
        target: int | None,
        allow_out_of_order: bool,
        backup: bool | None,
        accept: tuple[str, ...],
        **kwargs: Any,
    ) -> None:
        func(*args, options=UpOptions(target, allow_out_of_order, backup, AcceptSpec.parse(accept)), **kwargs)

    return command


@migrate.command()
@_up_options
@click.pass_obj
def plan(obj: CliContext, options: UpOptions) -> None:
    """Show what `migrate up` would run, with the statements; changes nothing."""
    migrator = _migrator(obj)
    database, plans = migrator.plans(options)
    steps = [(p.namespace, m) for p in plans for m in p.to_apply]
    wanted, reason = migrator.backup_reason(options.backup)
    command = migrator.config.migrate_command
    click.echo(f"database: {database}")
    for p in plans:
        for drift in p.accepted:
            click.echo(f"accept changed checksum of {p.namespace} {drift.file.name}")
    for namespace, m in steps:
        click.echo(f"\n== {namespace} {m.name} ({_mode(m)})")
        click.echo(_body(m))
    if command:
        click.echo(f"\n== then run MIGRATE_COMMAND: {' '.join(command)}")
    if steps or command:
        click.echo(f"\nbackup first: {'yes' if wanted else 'no'} ({reason})")
    else:
        click.echo("nothing to apply")
    problems = _report(plans)
    if problems:
        raise SystemExit(EXIT_PROBLEM)


@migrate.command()
@_up_options
@click.pass_obj
def up(obj: CliContext, options: UpOptions) -> None:
    """Apply pending migrations: Railyard's own, then the application's."""
    _print_result(_migrator(obj).up(options), "applied")


@migrate.command()
@click.option("--steps", type=int, default=1, show_default=True, help="How many migrations to revert.")
@_backup_option
@_accept_option
@click.pass_obj
def down(obj: CliContext, steps: int, backup: bool | None, accept: tuple[str]) -> None:
    """Revert the newest application migrations; refuses if one has no down."""
    _print_result(_migrator(obj).down(steps, backup=backup, accept=AcceptSpec.parse(accept)), "reverted")


def _print_result(result: RunResult, verb: str) -> None:
    if result.backup_id:
        click.echo(f"backed up first: {result.backup_id}")
    for s in result.steps:
        retried = f", {s.attempts} attempts" if s.attempts > 1 else ""
        click.echo(f"{verb} {s.namespace} {s.name} ({s.duration_ms} ms{retried})")
    if result.command_ran:
        click.echo("MIGRATE_COMMAND finished")
    if not result.steps and not result.command_ran:
        click.echo(f"nothing {verb}: {result.database} is up to date" if verb == "applied" else f"nothing {verb}")


def _mode(m: MigrationFile) -> str:
    kind = "SQL" if m.kind == "sql" else "Python"
    return f"{kind}, {'in a transaction' if m.transactional else 'no transaction'}"


def _body(m: MigrationFile) -> str:
    if m.kind == "py":
        return f"# upgrade(conn) from {m.display}\n{m.path.read_text().strip()}"
    return (m.up_sql or "").strip()


def _report(plans: list[Plan]) -> list[str]:
    problems = [p for plan in plans for p in plan.problems]
    for plan in plans:
        for warning in plan.warnings:
            click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    return problems


def _print_status(database: str, plans: list[Plan], code: int, command: tuple[str, ...]) -> None:
    click.echo(f"database: {database}")
    for plan in plans:
        drifted = {d.applied.version for d in plan.drifted}
        for a in plan.applied:
            state = "DRIFTED" if a.version in drifted else "applied"
            when = a.applied_at.strftime("%Y-%m-%d %H:%M:%SZ") if a.applied_at else "?"
            click.echo(f"{plan.namespace:<9} {a.name:<40} {state:<8} {when} ({a.duration_ms} ms)")
        out_of_order = {m.version for m in plan.out_of_order}
        for m in plan.pending:
            state = "pending (out of order)" if m.version in out_of_order else "pending"
            click.echo(f"{plan.namespace:<9} {m.name:<40} {state}")
    if command:
        click.echo(f"app       managed by MIGRATE_COMMAND: {' '.join(command)} (its state is not shown)")
    _report(plans)
    applied = sum(len(p.applied) for p in plans)
    pending = sum(len(p.pending) for p in plans)
    drifted_count = sum(len(p.drifted) for p in plans)
    click.echo(f"{applied} applied, {pending} pending, {drifted_count} drifted: {STATUS_WORDS[code]}")


def _applied_json(namespace: str, a: AppliedMigration) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "version": a.version,
        "name": a.name,
        "checksum": a.checksum,
        "applied_at": a.applied_at.isoformat() if a.applied_at else None,
        "duration_ms": a.duration_ms,
        "applied_by": a.applied_by,
    }


def _file_json(namespace: str, m: MigrationFile) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "version": m.version,
        "name": m.name,
        "path": str(m.path),
        "checksum": m.checksum,
        "kind": m.kind,
        "transactional": m.transactional,
        "has_down": m.has_down,
    }


def _status_json(database: str, plans: list[Plan], code: int, command: tuple[str, ...]) -> dict[str, Any]:
    return {
        "database": database,
        "status": STATUS_WORDS[code],
        "exit_code": code,
        "applied": [_applied_json(p.namespace, a) for p in plans for a in p.applied],
        "pending": [_file_json(p.namespace, m) for p in plans for m in p.pending],
        "drifted": [
            {
                **_file_json(p.namespace, d.file),
                "applied_name": d.applied.name,
                "applied_checksum": d.applied.checksum,
            }
            for p in plans
            for d in p.drifted
        ],
        "out_of_order": [_file_json(p.namespace, m) for p in plans for m in p.out_of_order],
        "missing": [_applied_json(p.namespace, a) for p in plans for a in p.missing],
        "problems": [problem for p in plans for problem in p.problems],
        "warnings": [w for p in plans for w in p.warnings],
        "migrate_command": " ".join(command) if command else None,
    }
