"""The scheduler's settings: cron strings, time zone and intervals, read once and validated.

Every problem is reported at once, each naming its variable and how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from railyard.core.cron import cron_problem, zone_problem
from railyard.core.envparse import parse_float
from railyard.core.errors import ConfigError

DEFAULT_BACKUP_CRON = "0 3 * * *"
DEFAULT_RETENTION_CRON = "30 4 * * *"
DEFAULT_VERIFY_CRON = "0 5 * * 0"
DEFAULT_STALENESS_CRON = "15 * * * *"  # hourly, off the top of the hour
DEFAULT_TIMEZONE = "UTC"
DEFAULT_INTERVAL_S = 30.0
DEFAULT_CATCH_UP_INTERVAL_S = 3600.0
MAX_INTERVAL_S = 3600.0
MAX_CATCH_UP_INTERVAL_S = 86400.0

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ScheduleConfig:
    backup_cron: str = DEFAULT_BACKUP_CRON
    retention_cron: str = DEFAULT_RETENTION_CRON
    verify_cron: str = DEFAULT_VERIFY_CRON
    staleness_cron: str = DEFAULT_STALENESS_CRON
    timezone: str = DEFAULT_TIMEZONE
    retention_config: str | None = None  # data-retention policies file; rows are purged only when set
    catch_up: bool = True
    interval_s: float = DEFAULT_INTERVAL_S  # how often due entries are looked for
    catch_up_interval_s: float = DEFAULT_CATCH_UP_INTERVAL_S  # how often stale backups are looked for
    summary_cron: str | None = None  # the weekly summary alert; none unless WEEKLY_SUMMARY_CRON is set

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ScheduleConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def cron(name: str, default: str) -> str:
            value = " ".join(get(name, default).split())
            problem = cron_problem(value)
            if problem:
                problems.append(f"{name}={problem}")
            return value

        def seconds(name: str, default: float, maximum: float) -> float:
            raw = get(name, str(default))
            try:
                value = parse_float(raw)
            except ValueError:
                value = -1.0
            if not 0 < value <= maximum:
                problems.append(f"{name}={raw!r} is not a number of seconds between 0 and {maximum:g}")
                return default
            return value

        timezone = get("SCHEDULE_TIMEZONE", DEFAULT_TIMEZONE)
        zone = zone_problem(timezone)
        if zone:
            problems.append(f"SCHEDULE_TIMEZONE={zone}")

        catch_up_raw = get("BACKUP_CATCH_UP", "true").lower()
        if catch_up_raw not in TRUE_WORDS + FALSE_WORDS:
            problems.append(f"BACKUP_CATCH_UP={catch_up_raw!r} is not true or false")

        config = cls(
            backup_cron=cron("BACKUP_CRON", DEFAULT_BACKUP_CRON),
            retention_cron=cron("RETENTION_CRON", DEFAULT_RETENTION_CRON),
            verify_cron=cron("VERIFY_CRON", DEFAULT_VERIFY_CRON),
            staleness_cron=cron("STALENESS_CRON", DEFAULT_STALENESS_CRON),
            summary_cron=cron("WEEKLY_SUMMARY_CRON", "") if get("WEEKLY_SUMMARY_CRON", "") else None,
            timezone=timezone,
            retention_config=env.get("RETENTION_CONFIG", "").strip() or None,
            catch_up=catch_up_raw not in FALSE_WORDS,
            interval_s=seconds("SCHEDULER_INTERVAL_S", DEFAULT_INTERVAL_S, MAX_INTERVAL_S),
            catch_up_interval_s=seconds("CATCH_UP_INTERVAL_S", DEFAULT_CATCH_UP_INTERVAL_S, MAX_CATCH_UP_INTERVAL_S),
        )
        if problems:
            raise ConfigError(problems)
        return config
