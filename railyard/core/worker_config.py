"""The worker's own knobs, read from the environment and validated at start-up.

``WORKER_HEARTBEAT_GRACE_S``: how long after its last heartbeat a running job counts as
abandoned (its worker was killed) and is retried or failed by the next registry cleanup.
``WORKER_RESCUE_INTERVAL_S``: how often each worker looks for such jobs (worker/rescue.py).
``METRICS_PORT``: serve Prometheus metrics on this port (railyard.ops.metrics); unset: none.
``RAILYARD_RETRY_BACKOFF_SCALE``: multiplies every retry backoff in the registry (for
test and staging environments where minutes of backoff are too slow; 1 in production).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from railyard.core.envparse import parse_float, parse_int, whole_number
from railyard.core.errors import ConfigError

DEFAULT_HEARTBEAT_GRACE_S = 60  # rq's own margin over the monitoring interval
# With rq's 30 s job-monitoring interval and the 60 s grace, a killed job is rescued at most
# 30 + 60 + 15 = 105 s after the kill.
DEFAULT_RESCUE_INTERVAL_S = 15
MAX_BACKOFF_SCALE = 10.0


@dataclass(frozen=True)
class WorkerConfig:
    heartbeat_grace_s: int = DEFAULT_HEARTBEAT_GRACE_S
    retry_backoff_scale: float = 1.0
    rescue_interval_s: int = DEFAULT_RESCUE_INTERVAL_S
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerConfig:
        env = os.environ if environ is None else environ
        problems = []
        grace = DEFAULT_HEARTBEAT_GRACE_S
        raw = env.get("WORKER_HEARTBEAT_GRACE_S", "").strip()
        if raw:
            try:
                grace = parse_int(raw)
                if not 1 <= grace <= 3600:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"WORKER_HEARTBEAT_GRACE_S={raw[:20]!r} is not a whole number of seconds from 1 to 3600"
                )
        rescue = whole_number(env, "WORKER_RESCUE_INTERVAL_S", DEFAULT_RESCUE_INTERVAL_S, 1, 300, problems)
        port = whole_number(env, "METRICS_PORT", 0, 0, 65535, problems) or None
        scale = 1.0
        raw = env.get("RAILYARD_RETRY_BACKOFF_SCALE", "").strip()
        if raw:
            try:
                scale = parse_float(raw)
                if not 0 < scale <= MAX_BACKOFF_SCALE:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"RAILYARD_RETRY_BACKOFF_SCALE={raw[:20]!r} is not a number above 0 and at most "
                    f"{MAX_BACKOFF_SCALE:g}; 1 keeps the registry's backoffs, 0.01 makes 5 minutes 3 seconds"
                )
        if problems:
            raise ConfigError(problems)
        return cls(heartbeat_grace_s=grace, retry_backoff_scale=scale, rescue_interval_s=rescue, metrics_port=port)
