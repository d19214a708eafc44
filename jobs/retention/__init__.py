"""The retention jobs (queue ``retention``): prune backups, purge expired rows.

``prune_backups`` and ``purge_rows`` are what the queue calls; ``run_prune`` and
``run_purge`` are the same work for in-process callers such as the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from jobs.backup.copy_config import CopyConfig
from jobs.backup.series import lock_probe
from jobs.retention import purge
from jobs.retention.config import backup_policy_from_env, copy_policy_from_env
from jobs.retention.policy import RetentionPolicy
from jobs.retention.prune import PruneReport, prune
from jobs.retention.purge_config import config_from_env
from railyard.core import registry
from railyard.core.errors import RetryableError, first_line
from railyard.core.settings import Settings, redact_url
from railyard.core.storage import ObjectStore, StorageLocation, open_backup_store

PRUNE_JOB = "jobs.retention.prune_backups"
PURGE_JOB = "jobs.retention.purge_rows"
# A purge stops between batches this long before its job timeout, so it ends cleanly.
BUDGET_MARGIN_S = 300


def prune_backups(dry_run: bool = False) -> dict[str, Any]:
    """Apply the backup retention policy (BACKUP_KEEP_*) to this environment's backups, and the
    copy's policy (BACKUP_COPY_KEEP_*) to the copy's (``copy``: None without BACKUP_COPY_STORAGE_URL)."""
    settings = Settings.from_env()
    return prune_result(run_prune(settings, dry_run=dry_run), run_copy_prune(settings, dry_run=dry_run))


def prune_result(report: PruneReport, copied: PruneReport | None) -> dict[str, Any]:
    """The primary's prune report, with the copy's (None without a copy) under ``copy``."""
    return {**report.to_dict(), "copy": copied.to_dict() if copied else None}


def purge_rows(dry_run: bool = False) -> dict[str, Any]:
    """Delete rows past their maximum age, as RETENTION_CONFIG describes."""
    deadline = time.monotonic() + registry.require_spec(PURGE_JOB).timeout_s - BUDGET_MARGIN_S
    return run_purge(Settings.from_env(), dry_run=dry_run, deadline=deadline).to_dict()


def run_prune(
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PruneReport:
    """Prune the backup store (BACKUP_STORAGE_URL) with the backup retention policy."""
    policy = backup_policy_from_env(environ)
    store, location = open_backup_store(settings, locked=True)
    return _prune(settings, store, location, policy, dry_run=dry_run, now=now, environ=environ)


def run_copy_prune(
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PruneReport | None:
    """Prune the copy destination with its own policy; None when BACKUP_COPY_STORAGE_URL is unset."""
    config = CopyConfig.from_env(environ)
    if config is None:
        return None
    policy = copy_policy_from_env(environ)
    return _prune(
        settings, config.open_store(settings), config.location, policy, dry_run=dry_run, now=now, environ=environ
    )


def _prune(
    settings: Settings,
    store: ObjectStore,
    location: StorageLocation,
    policy: RetentionPolicy,
    *,
    dry_run: bool,
    now: datetime | None,
    environ: Mapping[str, str] | None,
) -> PruneReport:
    return prune(
        store,
        location,
        environment=settings.environment,
        policy=policy,
        now=now or datetime.now(UTC),
        dry_run=dry_run,
        series_lock=lock_probe(settings, environ),
    )


def run_purge(
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    deadline: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> purge.PurgeReport:
    policies = config_from_env(environ)
    try:
        conn = purge.connect(settings.database_url)
    except psycopg.OperationalError as exc:
        reason = first_line(exc)
        raise RetryableError(
            f"cannot connect to PostgreSQL at {redact_url(settings.database_url)}: {reason}; check DATABASE_URL"
        ) from exc
    with conn:
        return purge.purge_expired_rows(
            conn, policies, now=now or datetime.now(UTC), dry_run=dry_run, deadline=deadline
        )
