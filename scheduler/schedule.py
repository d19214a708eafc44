"""The declared schedule: entries built from settings, each with a stable id. Pure.

An entry says which job runs on which cron in which time zone. Its id never changes
while the thing it schedules stays the same (``backup-app`` for database ``app``), so a
restart finds and keeps it; its fingerprint changes when its cron, time zone, job or
arguments do, so a restart replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from railyard.core.databases import named_database_urls
from railyard.core.pgtools import PgTarget
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings

BACKUP_JOB = "jobs.backup.run_backup"
PRUNE_JOB = "jobs.retention.prune_backups"
PURGE_JOB = "jobs.retention.purge_rows"
VERIFY_JOB = "jobs.verify.verify_backup"
STALENESS_JOB = "jobs.staleness.check_stale_backups"
SUMMARY_JOB = "jobs.summary.send_weekly_summary"

PERIOD_STAMP_FORMAT = "%Y%m%dT%H%MZ"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(name: str) -> str:
    """``name`` made safe for an RQ job id; names that had to change get a short hash to stay distinct."""
    safe = _UNSAFE.sub("_", name)
    if safe == name and name:
        return name
    return f"{safe}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class BackupTarget:
    """A database the schedule backs up: its name (as in the backup catalog) and the job's arguments."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str  # backup | prune | purge | verify | staleness | summary: with the subject, what one run's work is
    cron: str
    timezone: str
    func: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None  # the database a backup entry is for
    catch_up: bool = False  # run now when the newest backup of ``subject`` is overdue

    @property
    def fingerprint(self) -> str:
        """Changes whenever what or when this entry runs changes."""
        data = json.dumps([self.cron, self.timezone, self.func, dict(self.kwargs)], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def work_id(self, environment: str, period_start: datetime) -> str:
        """The RQ job id of this entry's work in one period: the same whatever fires it."""
        parts = [self.kind, slug(environment)]
        if self.subject is not None:
            parts.append(slug(self.subject))
        parts.append(period_start.astimezone(UTC).strftime(PERIOD_STAMP_FORMAT))
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "cron": self.cron,
            "timezone": self.timezone,
            "func": self.func,
            "kwargs": dict(self.kwargs),
            "subject": self.subject,
            "catch_up": self.catch_up,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            cron=str(data["cron"]),
            timezone=str(data["timezone"]),
            func=str(data["func"]),
            kwargs=dict(data.get("kwargs") or {}),
            subject=None if data.get("subject") is None else str(data["subject"]),
            catch_up=bool(data.get("catch_up", False)),
        )


def build_schedule(
    config: ScheduleConfig, targets: Iterable[BackupTarget], registered_jobs: Collection[str]
) -> tuple[Entry, ...]:
    """Every entry the settings declare; verification and the staleness check only where their jobs are registered."""
    tz = config.timezone
    entries: dict[str, Entry] = {}
    for target in targets:
        entry = Entry(
            id=f"backup-{slug(target.name)}",
            kind="backup",
            cron=config.backup_cron,
            timezone=tz,
            func=BACKUP_JOB,
            kwargs=dict(target.kwargs),
            subject=target.name,
            catch_up=config.catch_up,
        )
        entries.setdefault(entry.id, entry)
    entries["prune-backups"] = Entry("prune-backups", "prune", config.retention_cron, tz, PRUNE_JOB)
    if config.retention_config:
        entries["purge-rows"] = Entry("purge-rows", "purge", config.retention_cron, tz, PURGE_JOB)
    if VERIFY_JOB in registered_jobs:
        entries["verify-backups"] = Entry("verify-backups", "verify", config.verify_cron, tz, VERIFY_JOB)
    if STALENESS_JOB in registered_jobs:
        entries["check-staleness"] = Entry("check-staleness", "staleness", config.staleness_cron, tz, STALENESS_JOB)
    if config.summary_cron and SUMMARY_JOB in registered_jobs:
        entries["weekly-summary"] = Entry("weekly-summary", "summary", config.summary_cron, tz, SUMMARY_JOB)
    return tuple(entries.values())


def backup_entry_for(entries: Iterable[Entry], kwargs: Mapping[str, Any]) -> Entry | None:
    """The backup entry whose job arguments are exactly ``kwargs``, if the schedule has one."""
    return next((e for e in entries if e.kind == "backup" and dict(e.kwargs) == dict(kwargs)), None)


def targets_from_settings(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[BackupTarget, ...]:
    """The databases the schedule backs up.

    BACKUP_ALL_DATABASES=true: one entry backing up every database on DATABASE_URL's server;
    else each BACKUP_DATABASE_URLS name; else the application database (DATABASE_URL). Job
    arguments carry names only, never URLs, so no credential is stored in Redis. A target's
    name is the series its backups are catalogued under (what catch-up looks for).
    """
    env = os.environ if environ is None else environ
    main = PgTarget(settings.database_url).dbname
    if env.get("BACKUP_ALL_DATABASES", "").strip().lower() in ("1", "true", "yes"):
        return (BackupTarget(main, {"all_databases": True}),)
    named = named_database_urls(env)
    if named:
        return tuple(BackupTarget(name, {"database": name}) for name in sorted(named))
    return (BackupTarget(main),)
