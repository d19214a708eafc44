"""Backups: pg_dump streamed to object storage, and everything that reads them back.

Queue entries (public job paths, enqueued by string): ``jobs.backup.run_backup`` (here);
``jobs.copy.copy_backup``, ``jobs.verify.verify_backup``, ``jobs.staleness.check_stale_backups``
and ``jobs.summary.send_weekly_summary`` (thin modules kept at those paths, code in
:mod:`jobs.backup.copy`, :mod:`jobs.backup.verify`, :mod:`jobs.backup.staleness` and
:mod:`jobs.backup.summary`).

Modules: ``dump`` (the backup engine), ``dump_archive`` (the custom-format reader that checks
and counts rows as the dump streams past), ``rowcounts``, ``catalog`` (keys and manifests),
``series`` (which server a backup belongs to), ``encryption``, ``restore`` with
``restore_plan``, ``restore_script`` and ``parallel_restore``, ``production_guard``,
``verify``, ``copy`` with ``copy_config`` and ``destinations``, ``staleness``, ``summary``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from jobs.backup.config import BackupOptions
from jobs.backup.dump import backup_all_databases, backup_database
from jobs.backup.series import resolve_source
from railyard.core import alerts
from railyard.core.alert_config import AlertConfig
from railyard.core.errors import ConfigError, LockBusyError
from railyard.core.settings import Settings

log = structlog.get_logger()


def run_backup(
    database: str | None = None,
    schema_only: bool = False,
    data_only: bool = False,
    tables: list[str] | None = None,
    exclude_tables: list[str] | None = None,
    schemas: list[str] | None = None,
    exclude_schemas: list[str] | None = None,
    all_databases: bool = False,
) -> dict[str, Any]:
    """RQ job ``jobs.backup.run_backup``.

    Backs up ``database`` (a BACKUP_DATABASE_URLS name, or a database on DATABASE_URL's
    server; default DATABASE_URL's own), or with ``all_databases`` every database on
    DATABASE_URL's server.
    """
    from rq import get_current_job  # the queue's entry only: the CLI's backups import this package without rq

    from railyard.core import registry

    with alerts.pinged(is_final=lambda exc: not registry.will_retry(get_current_job(), exc)):
        options = BackupOptions.from_job_arguments(
            schema_only=schema_only,
            data_only=data_only,
            tables=tables,
            exclude_tables=exclude_tables,
            schemas=schemas,
            exclude_schemas=exclude_schemas,
        )
        result = _run_backup(database, options, all_databases)
    _notify_success(result)
    return result


def _notify_success(result: dict[str, Any]) -> None:
    """With ALERT_ON_SUCCESS, a ``backup_succeeded`` notice through the same channels as alerts."""
    try:
        config = AlertConfig.from_env()
    except ConfigError:
        return  # the worker reported it at start-up
    if not config.notify_success or result.get("skipped"):
        return
    done = result.get("backups", [result])
    size = sum(int(m["size"]) for m in done)
    names = ", ".join(f"{m['id']}" for m in done)
    summary = f"backed up {len(done)} database{'s' if len(done) != 1 else ''}: {names} ({size:,} bytes stored)"
    details = {"ids": [m["id"] for m in done], "keys": [m["key"] for m in done], "bytes": size}
    details["duration_s"] = round(sum(float(m["duration_s"]) for m in done), 3)
    alerts.send_alert(alerts.Alert("backup_succeeded", summary, Settings.from_env().environment, details), config)


def _run_backup(database: str | None, options: BackupOptions, all_databases: bool) -> dict[str, Any]:
    settings = Settings.from_env()
    source = resolve_source(settings, database)
    if all_databases:
        manifests, globals_key = backup_all_databases(settings, source, options=options)
        return {"backups": [dataclasses.asdict(m) for m in manifests], "globals_key": globals_key}
    try:
        manifest = backup_database(settings, source=source, options=options)
    except LockBusyError as exc:
        log.warning("backup_skipped", database=source.target.dbname, series=source.series, reason=str(exc))
        return {"skipped": True, "database": source.target.dbname, "reason": str(exc)}
    return dataclasses.asdict(manifest)
