"""The backup retention policy from ``BACKUP_KEEP_*`` and ``BACKUP_MIN_KEEP``, every problem reported at once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from jobs.retention.policy import RetentionPolicy
from railyard.core.durations import Duration
from railyard.core.envparse import whole_number
from railyard.core.errors import ConfigError

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
    return _policy_from_env(env, "BACKUP_", DEFAULTS)


def copy_policy_from_env(environ: Mapping[str, str] | None = None) -> RetentionPolicy:
    """The copy destination's policy: each ``BACKUP_COPY_KEEP_*`` (and ``BACKUP_COPY_MIN_KEEP``)
    left unset takes the primary's value."""
    env = os.environ if environ is None else environ
    return _policy_from_env(env, COPY_PREFIX, backup_policy_from_env(env))


COPY_PREFIX = "BACKUP_COPY_"


def _policy_from_env(env: Mapping[str, str], prefix: str, defaults: RetentionPolicy) -> RetentionPolicy:
    problems: list[str] = []

    def name(variable: str) -> str:
        return prefix + variable.removeprefix("BACKUP_")

    def count(variable: str, default: int, low: int) -> int:
        return whole_number(env, name(variable), default, low, MAX_COUNT, problems)

    counts = {field: count(variable, getattr(defaults, field), 0) for field, variable in COUNT_VARIABLES.items()}
    min_keep = count(MIN_KEEP_VARIABLE, defaults.min_keep, 1)

    within: Duration | None = defaults.within
    raw_within = env.get(name(WITHIN_VARIABLE), "").strip()
    if raw_within:
        try:
            within = Duration.parse(raw_within)
        except ValueError as exc:
            problems.append(f"{name(WITHIN_VARIABLE)}: {exc}")

    policy = RetentionPolicy(**counts, within=within, min_keep=min_keep)
    if not problems and policy.is_empty:
        names = ", ".join(name(v) for v in [*COUNT_VARIABLES.values(), WITHIN_VARIABLE])
        problems.append(
            f"the backup retention policy keeps nothing (every one of {names} is 0 or unset); "
            f"set at least one above 0, e.g. {name('BACKUP_KEEP_DAILY')}=7"
        )
    if problems:
        raise ConfigError(problems)
    return policy
