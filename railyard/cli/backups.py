"""``railyard backups list|show``: the backups in storage, their verifications and copies."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from jobs.backup.catalog import Manifest, find_backup, read_catalog
from jobs.backup.copy_config import CopyConfig
from jobs.backup.series import default_series
from jobs.backup.verify import read_verifications
from railyard.cli.context import CliContext
from railyard.core import progress
from railyard.core.errors import RailyardError, one_line
from railyard.core.settings import Settings
from railyard.core.storage import open_backup_store


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
