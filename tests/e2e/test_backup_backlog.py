"""A backup slower than its period: the scheduler folds the periods that come round meanwhile, so the
queue never holds more than one backup of the database, and status says the backup outlasts its period.

A one-minute cron over five minutes, driven by the scheduler's injected clock (each pass is the
next minute) against a real worker whose pg_dump is slowed by a PG_BIN_DIR wrapper.
"""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from railyard.core.pgtools import find_tool
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from scheduler import overview, runs
from scheduler.schedule import BACKUP_JOB, Entry
from scheduler.service import RailyardScheduler

pytestmark = pytest.mark.timeout(120)

ENV = "development"
EVERY_MINUTE = Entry("backup-app", "backup", "* * * * *", "UTC", BACKUP_JOB, {}, "app", True)
DUMP_DELAY_S = 4


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def slow_pg_dump(directory: Path, marker: Path) -> Path:
    """A PG_BIN_DIR whose pg_dump touches ``marker`` and sleeps before running the real one."""
    real = find_tool("pg_dump", 15).path
    directory.mkdir()
    wrapper = directory / "pg_dump"
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec {real} --version\ntouch {marker}\nsleep {DUMP_DELAY_S}\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return directory


def backups_waiting_or_running(conn: redis.Redis) -> list[str]:
    return [
        *Queue("backup", connection=conn).get_job_ids(),
        *StartedJobRegistry("backup", connection=conn).get_job_ids(),
    ]


def wait_until(condition, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_backup_slower_than_its_period_never_builds_a_queue(
    start_worker, redis_url, redis_conn, database_url, tmp_path
) -> None:
    marker = tmp_path / "dump-started"
    env = {
        "REDIS_URL": redis_url,
        "ENVIRONMENT": ENV,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "store"),
        "PG_BIN_DIR": str(slow_pg_dump(tmp_path / "bin", marker)),
    }
    settings = Settings.from_env(env)
    clock = Clock(datetime.now(UTC).replace(second=1, microsecond=0))
    scheduler = RailyardScheduler(
        redis.Redis.from_url(redis_url),
        settings=settings,
        config=ScheduleConfig(interval_s=1),
        entries=[EVERY_MINUTE],
        clock=clock,
    )
    scheduler.reconcile()
    waiting: list[int] = []

    def next_minute() -> None:
        clock.at += timedelta(minutes=1)
        scheduler.run_once()
        waiting.append(len(backups_waiting_or_running(redis_conn)))

    next_minute()  # minute 1: the first backup is queued (no worker yet)
    (first,) = backups_waiting_or_running(redis_conn)
    next_minute()  # minute 2: folded into the queued one
    start_worker(env)
    wait_until(marker.exists)
    next_minute()  # minute 3: folded into the running one
    described = overview.describe(redis_conn, [EVERY_MINUTE], environment=ENV, now=clock.at, serializer="pickle")
    warning = described[0].slower_than_period()
    assert warning is not None and warning.startswith("backup-app: the last run has been running for ")
    assert "longer than its period of 60 s (* * * * *)" in warning and "(2 so far)" in warning

    wait_until(lambda: Job.fetch(first, connection=redis_conn).get_status() == JobStatus.FINISHED)
    next_minute()  # minute 4: the backup is done, this period's runs
    next_minute()  # minute 5: folded into minute 4's
    assert [1, 1, 1, 1, 1] == waiting
    assert 3 == runs.folded(redis_conn, ENV, EVERY_MINUTE.id)
    last = runs.read(redis_conn, ENV, EVERY_MINUTE.id, serializer="pickle")
    assert last is not None and last.job_id != first
    assert os.path.exists(marker)
