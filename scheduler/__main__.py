"""``python -m scheduler``: the scheduler service (see Procfile and docs/scheduler.md)."""

from __future__ import annotations

import sys

import redis
import structlog

from jobs.environment import validate_environment
from railyard.core import registry
from railyard.core.errors import ConfigError, RailyardError
from railyard.core.logs import configure_logging
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from scheduler.schedule import build_schedule, targets_from_settings
from scheduler.service import RailyardScheduler

EXIT_ERROR = 1
EXIT_CONFIG = 2


def main() -> int:
    try:
        validate_environment()
        settings = Settings.from_env()
        config = ScheduleConfig.from_env()
    except ConfigError as exc:
        print(f"railyard scheduler: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    log = structlog.get_logger()
    entries = build_schedule(config, targets_from_settings(settings), registry.REGISTRY)
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        RailyardScheduler(connection, settings=settings, config=config, entries=entries).run()
    except (RailyardError, redis.RedisError) as exc:
        log.error("scheduler_failed", error=" ".join(str(exc).split()) or type(exc).__name__)
        return EXIT_ERROR
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
