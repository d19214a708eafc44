"""The weekly summary: per series, backups taken, size trend and verification results.

:func:`summarize` is pure (the catalog's backups, the verification markers, ``now``); the
job ``jobs.summary.send_weekly_summary`` reads them from the store and sends the result as
a ``weekly_summary`` alert through the webhook and ``ALERT_URLS``. The scheduler runs it on
``WEEKLY_SUMMARY_CRON`` when that is set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from jobs.backup.catalog import Manifest, read_catalog
from jobs.backup.verify import read_verifications
from railyard.core.alert_config import AlertConfig
from railyard.core.alerts import Alert, send_alert
from railyard.core.progress import human_bytes
from railyard.core.settings import Settings
from railyard.core.storage import open_backup_store

log = structlog.get_logger()

WEEK = timedelta(days=7)


def summarize(
    backups: Sequence[Manifest], verifications: Mapping[str, Mapping[str, Any]], now: datetime
) -> tuple[str, dict[str, Any]]:
    """A one-paragraph summary of the week before ``now`` and its figures per series."""
    since = now - WEEK
    series: dict[str, dict[str, Any]] = {}
    for name in sorted({m.series_name for m in backups}):
        mine = sorted((m for m in backups if m.series_name == name), key=lambda m: m.finished)
        week = [m for m in mine if since < m.finished <= now]
        before = [m for m in mine if m.finished <= since]
        newest = week[-1] if week else (before[-1] if before else None)
        baseline = before[-1] if before else (week[0] if len(week) > 1 else None)
        trend = None
        if newest is not None and baseline is not None and baseline is not newest and baseline.size:
            trend = round((newest.size - baseline.size) * 100 / baseline.size, 1)
        results = [
            str(v["result"])
            for v in verifications.values()
            if str(v.get("series") or v.get("database")) == name and since.isoformat() < str(v["verified_at"])
        ]
        series[name] = {
            "backups": len(week),
            "newest_id": newest.id if newest else None,
            "newest_size": newest.size if newest else None,
            "size_change_percent": trend,
            "verifications_passed": results.count("passed"),
            "verifications_failed": results.count("failed"),
        }
    lines = [_line(name, figures) for name, figures in series.items()] or ["no backups at all"]
    summary = f"weekly summary to {now.strftime('%Y-%m-%d')}: " + "; ".join(lines)
    return summary, {"since": since.isoformat(), "until": now.isoformat(), "series": series}


def _line(name: str, f: Mapping[str, Any]) -> str:
    size = f"newest {human_bytes(f['newest_size'])}" if f["newest_size"] is not None else "no backup"
    if f["size_change_percent"] is not None:
        size += f" ({f['size_change_percent']:+.1f}% over the week)"
    checks = f"verifications {f['verifications_passed']} passed, {f['verifications_failed']} failed"
    return f"{name}: {f['backups']} backup{'s' if f['backups'] != 1 else ''}, {size}, {checks}"


def send_weekly_summary() -> dict[str, Any]:
    """RQ job ``jobs.summary.send_weekly_summary``: the summary, sent like an alert."""
    settings = Settings.from_env()
    store, location = open_backup_store(settings)
    catalog = read_catalog(store, location, environment=settings.environment)
    summary, details = summarize(catalog.backups, read_verifications(store, location), datetime.now(UTC))
    delivered = send_alert(Alert("weekly_summary", summary, settings.environment, details), AlertConfig.from_env())
    log.info("weekly_summary_sent", series=len(details["series"]), delivered=delivered)
    return {"summary": summary, "delivered": delivered}
