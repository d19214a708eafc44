"""Which conditions make ``railyard status`` (and the dashboard) report a problem.

``STATUS_WORKER_MISSING_AFTER``: a duration (default ``10m``) after which no worker seen
alive is a problem, or ``off``. ``STATUS_REQUIRE_SCHEDULE``: ``true`` (default) makes a
declared schedule entry that no scheduler has registered a problem; ``false`` ignores it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from railyard.core.durations import DurationError, parse_duration
from railyard.core.errors import ConfigError

DEFAULT_WORKER_MISSING_AFTER = timedelta(minutes=10)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class StatusConfig:
    worker_missing_after: timedelta | None = DEFAULT_WORKER_MISSING_AFTER  # None: not checked
    require_schedule: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StatusConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        missing: timedelta | None = DEFAULT_WORKER_MISSING_AFTER
        raw = env.get("STATUS_WORKER_MISSING_AFTER", "").strip()
        if raw.lower() in ("off", "never"):
            missing = None
        elif raw:
            try:
                missing = parse_duration(raw)
            except DurationError as exc:
                problems.append(f"STATUS_WORKER_MISSING_AFTER: {exc} (or off)")
        require = True
        raw = env.get("STATUS_REQUIRE_SCHEDULE", "").strip().lower()
        if raw in _FALSE:
            require = False
        elif raw and raw not in _TRUE:
            problems.append(f"STATUS_REQUIRE_SCHEDULE={raw[:20]!r} is not true or false")
        if problems:
            raise ConfigError(problems)
        return cls(worker_missing_after=missing, require_schedule=require)
