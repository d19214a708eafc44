"""S3 Object Lock settings: every dump and manifest written with a retention date (WORM).

``S3_OBJECT_LOCK=governance|compliance`` and ``S3_OBJECT_LOCK_DAYS=N``. Within the
retention period no one holding the worker's keys can delete or replace an object's
version; prune waits for the date to pass (docs/operations.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from railyard.core.envparse import whole_number
from railyard.core.errors import ConfigError

LOCK_MODES = {"governance": "GOVERNANCE", "compliance": "COMPLIANCE"}
MAX_LOCK_DAYS = 36_500  # S3's own ceiling is 100 years


@dataclass(frozen=True)
class ObjectLock:
    """The retention every object written gets: S3's mode name and a period in whole days."""

    mode: str  # "GOVERNANCE" or "COMPLIANCE"
    days: int

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)

    def describe(self) -> str:
        return f"{self.mode.lower()} for {self.days} days"


def object_lock_from_env(environ: Mapping[str, str] | None = None) -> ObjectLock | None:
    """The configured object lock, or None when S3_OBJECT_LOCK is unset; ConfigError names each problem."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    mode = env.get("S3_OBJECT_LOCK", "").strip().lower()
    days_set = bool(env.get("S3_OBJECT_LOCK_DAYS", "").strip())
    days = whole_number(env, "S3_OBJECT_LOCK_DAYS", 0, 1, MAX_LOCK_DAYS, problems)
    if mode and mode not in LOCK_MODES:
        problems.append(f"S3_OBJECT_LOCK={mode!r} is not one of governance, compliance; unset it for no lock")
    if mode and not days_set:
        problems.append(
            "S3_OBJECT_LOCK is set but S3_OBJECT_LOCK_DAYS is not; set it to the days each backup is locked"
        )
    if days_set and not mode:
        problems.append(
            "S3_OBJECT_LOCK_DAYS is set but S3_OBJECT_LOCK is not; set S3_OBJECT_LOCK=governance or compliance"
        )
    if problems:
        raise ConfigError(problems)
    if not mode:
        return None
    return ObjectLock(mode=LOCK_MODES[mode], days=days)
