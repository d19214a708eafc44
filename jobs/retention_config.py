"""The backup retention policy from ``BACKUP_KEEP_*`` and ``BACKUP_MIN_KEEP``, every problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from jobs.duration import Duration
from jobs.retention_policy import RetentionPolicy
from railyard.envparse import whole_number
from railyard.errors import ConfigError

DEFAULTS = RetentionPolicy()
COUNT_VARIABLES = {
    "last": "BACKUP_KEEP_LAST",
    "hourly": "BACKUP_KEEP_HOURLY",
    "daily": "BACKUP_KEEP_DAILY",
    "weekly": "BACKUP_KEEP_WEEKLY",
    "monthly": "BACKUP_KEEP_MONTHLY",
    "yearly": "BACKUP_KEEP_YEARLY",
}
WITHIN_VARIABLE = "BACKUP_KEEP_WITHIN"
MIN_KEEP_VARIABLE = "BACKUP_MIN_KEEP"
MAX_COUNT = 100_000


def backup_policy_from_env(environ: Mapping[str, str] | None = None) -> RetentionPolicy:
    """Read the policy; raise one ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def count(name: str, default: int, low: int) -> int:
        return whole_number(env, name, default, low, MAX_COUNT, problems)

    counts = {field: count(name, getattr(DEFAULTS, field), 0) for field, name in COUNT_VARIABLES.items()}
    min_keep = count(MIN_KEEP_VARIABLE, DEFAULTS.min_keep, 1)

    within: Duration | None = None
    raw_within = env.get(WITHIN_VARIABLE, "").strip()
    if raw_within:
        try:
            within = Duration.parse(raw_within)
        except ValueError as exc:
            problems.append(f"{WITHIN_VARIABLE}: {exc}")

    policy = RetentionPolicy(**counts, within=within, min_keep=min_keep)
    if not problems and policy.is_empty:
        names = ", ".join([*COUNT_VARIABLES.values(), WITHIN_VARIABLE])
        problems.append(
            f"the backup retention policy keeps nothing (every one of {names} is 0 or unset); "
            "set at least one above 0, e.g. BACKUP_KEEP_DAILY=7"
        )
    if problems:
        raise ConfigError(problems)
    return policy
