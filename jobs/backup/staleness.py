"""Is each database's newest backup fresh enough? The status command and the hourly check ask.

A database counts when it has backups in the catalog or when the schedule backs it up
(DATABASE_URL's database, or every BACKUP_DATABASE_URLS entry): a configured database
with no backup at all is stale. Alerts are sent once per database per stale period, so
an hourly check does not repeat itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog

from jobs.backup.catalog import Manifest, read_catalog
from jobs.backup.copy_config import CopyConfig
from jobs.backup.verify import read_verifications
from railyard.core.alert_config import AlertConfig
from railyard.core.alerts import Alert, send_alert
from railyard.core.databases import named_database_urls
from railyard.core.durations import format_duration
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore, StorageLocation, open_backup_store

log = structlog.get_logger()

ALERT_KEY_PREFIX = "railyard:alerts:stale"


@dataclass(frozen=True)
class Freshness:
    database: str
    newest: Manifest | None
    age: timedelta | None
    stale: bool
    verification: dict[str, Any] | None  # the database's latest verification marker

    @property
    def verification_failed(self) -> bool:
        return bool(self.verification and self.verification.get("result") == "failed")

    def as_dict(self) -> dict[str, Any]:
        m = self.newest
        return {
            "database": self.database,
            "id": m.id if m else None,
            "key": m.key if m else None,
            "finished_at": m.finished_at if m else None,
            "age_s": int(self.age.total_seconds()) if self.age is not None else None,
            "size": m.size if m else None,
            "stale": self.stale,
            "verified": (self.verification or {}).get("result") if self._verifies_newest else None,
            "latest_verification": self.verification,
        }

    @property
    def _verifies_newest(self) -> bool:
        return bool(self.newest and self.verification and self.verification.get("key") == self.newest.key)


def assess(
    newest: Mapping[str, Manifest | None],
    verifications: Mapping[str, dict[str, Any]],
    now: datetime,
    stale_after: timedelta,
) -> list[Freshness]:
    """One Freshness per database, by name; pure."""
    latest_marker: dict[str, dict[str, Any]] = {}
    for marker in verifications.values():
        db = str(marker.get("series") or marker.get("database", ""))
        if db and str(marker.get("verified_at", "")) > str(latest_marker.get(db, {}).get("verified_at", "")):
            latest_marker[db] = marker
    out = []
    for database in sorted(newest):
        manifest = newest[database]
        age = now - manifest.finished if manifest else None
        stale = age is None or age > stale_after
        out.append(Freshness(database, manifest, age, stale, latest_marker.get(database)))
    return out


def stale_period(item: Freshness, now: datetime, stale_after: timedelta) -> int:
    """Which stale period ``item`` is in: one alert per database per period."""
    if item.age is None:
        return int(now.timestamp() // stale_after.total_seconds())
    return int((item.age - stale_after).total_seconds() // stale_after.total_seconds())


def expected_databases(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The series the schedule keeps fresh: every BACKUP_DATABASE_URLS name, else DATABASE_URL's."""
    named = named_database_urls(environ)
    return sorted(named) or [PgTarget(settings.database_url).dbname]


def newest_backups(
    store: ObjectStore, location: StorageLocation, environment: str, expected: list[str], now: datetime | None = None
) -> dict[str, Manifest | None]:
    """The newest usable backup of each series (none dated in the future), by series name."""
    catalog = read_catalog(store, location, environment=environment)
    at = now or datetime.now(UTC)
    newest: dict[str, Manifest | None] = dict.fromkeys(expected)
    for name in catalog.series_names():
        newest[name] = catalog.newest(name, at)
    return newest


def freshness(settings: Settings, config: AlertConfig, now: datetime) -> list[Freshness]:
    store, location = open_backup_store(settings)
    newest = newest_backups(store, location, settings.environment, expected_databases(settings), now)
    return assess(newest, read_verifications(store, location), now, config.stale_after)


def copy_freshness(settings: Settings, config: AlertConfig, now: datetime) -> list[Freshness] | None:
    """Freshness at the copy (BACKUP_COPY_STORAGE_URL), by the same rules; None without a copy."""
    copy = CopyConfig.from_env()
    if copy is None:
        return None
    newest = newest_backups(
        copy.open_store(settings), copy.location, settings.environment, expected_databases(settings), now
    )
    return assess(newest, {}, now, config.stale_after)


def describe_stale(item: Freshness, stale_after: timedelta, where: str = "") -> str:
    if item.newest is None or item.age is None:
        return f"database {item.database} has no backup{where} at all"
    return (
        f"the newest backup{where} of database {item.database} is {format_duration(item.age)} old "
        f"(BACKUP_STALE_AFTER is {format_duration(stale_after)}): {item.newest.id}"
    )


def check_stale_backups(
    *,
    settings: Settings | None = None,
    config: AlertConfig | None = None,
    connection: redis.Redis | None = None,
    now: Callable[[], datetime] | None = None,
) -> dict[str, Any]:
    """RQ job ``jobs.staleness.check_stale_backups``: alert once per stale database and period.

    Safe to run as often as wanted; the scheduler runs it hourly.
    """
    settings = settings or Settings.from_env()
    config = config or AlertConfig.from_env()
    at = (now or (lambda: datetime.now(UTC)))()
    conn = connection or redis.Redis.from_url(settings.redis_url)
    stale, alerted = _alert_stale(settings, config, conn, at, freshness(settings, config, at), copy=False)
    result: dict[str, Any] = {"stale": stale, "alerted": alerted}
    at_copy = copy_freshness(settings, config, at)
    if at_copy is not None:
        # A copy that has stopped arriving alerts like a stale backup, under its own event.
        result["copy_stale"], result["copy_alerted"] = _alert_stale(settings, config, conn, at, at_copy, copy=True)
    log.info(
        "stale_check_completed", stale=len(stale), alerted=len(alerted), copy_stale=len(result.get("copy_stale", []))
    )
    return result


def _alert_stale(
    settings: Settings, config: AlertConfig, conn: redis.Redis, at: datetime, items: list[Freshness], *, copy: bool
) -> tuple[list[str], list[str]]:
    alerted, stale = [], []
    for item in items:
        if not item.stale:
            continue
        stale.append(item.database)
        marker = item.newest.id if item.newest else "none"
        period = stale_period(item, at, config.stale_after)
        prefix = f"{ALERT_KEY_PREFIX}:copy" if copy else ALERT_KEY_PREFIX
        key = f"{prefix}:{settings.environment}:{item.database}:{marker}:{period}"
        ttl_s = int(config.stale_after.total_seconds() * 2) + 86400
        if not conn.set(key, at.isoformat(), nx=True, ex=ttl_s):
            continue
        summary = describe_stale(item, config.stale_after, " at the copy" if copy else "")
        event = "backup_copy_stale" if copy else "backup_stale"
        send_alert(Alert(event, summary, settings.environment, item.as_dict()), config)
        alerted.append(item.database)
    return stale, alerted
