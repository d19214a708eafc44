"""Backup retention policy from the environment, and data retention policies from TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.retention.config import backup_policy_from_env
from jobs.retention.policy import RetentionPolicy
from jobs.retention.purge_config import CONFIG_VARIABLE, PurgePolicy, config_from_env, parse_config
from railyard.core.durations import Duration
from railyard.core.errors import ConfigError


def test_backup_policy_defaults() -> None:
    policy = backup_policy_from_env({})
    assert RetentionPolicy(last=3, hourly=0, daily=7, weekly=4, monthly=12, yearly=0, within=None, min_keep=1) == policy


def test_backup_policy_from_every_variable() -> None:
    env = {
        "BACKUP_KEEP_LAST": "1",
        "BACKUP_KEEP_HOURLY": "24",
        "BACKUP_KEEP_DAILY": "0",
        "BACKUP_KEEP_WEEKLY": "8",
        "BACKUP_KEEP_MONTHLY": "6",
        "BACKUP_KEEP_YEARLY": "3",
        "BACKUP_KEEP_WITHIN": "14d",
        "BACKUP_MIN_KEEP": "2",
    }
    expected = RetentionPolicy(1, 24, 0, 8, 6, 3, Duration(days=14), 2)
    assert expected == backup_policy_from_env(env)


def test_backup_policy_reports_every_problem_at_once() -> None:
    env = {
        "BACKUP_KEEP_DAILY": "seven",
        "BACKUP_KEEP_WEEKLY": "-1",
        "BACKUP_KEEP_WITHIN": "2 weeks",
        "BACKUP_MIN_KEEP": "0",
    }
    with pytest.raises(ConfigError) as caught:
        backup_policy_from_env(env)
    problems = caught.value.problems
    assert len(problems) == 4
    assert "BACKUP_KEEP_DAILY='seven' is not a whole number" in problems[0]
    assert "BACKUP_KEEP_WEEKLY=-1 is out of range" in problems[1]
    assert "BACKUP_MIN_KEEP=0 is out of range; use a whole number from 1" in problems[2]
    assert problems[3].startswith("BACKUP_KEEP_WITHIN: '2 weeks' is not a duration")


def test_all_zero_backup_policy_is_refused() -> None:
    zero = {name: "0" for name in ("LAST", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")}
    with pytest.raises(ConfigError, match="keeps nothing"):
        backup_policy_from_env({f"BACKUP_KEEP_{k}": v for k, v in zero.items()})
    within_only = backup_policy_from_env(
        {**{f"BACKUP_KEEP_{k}": v for k, v in zero.items()}, "BACKUP_KEEP_WITHIN": "7d"}
    )
    assert Duration(days=7) == within_only.within


FULL = """
[[policy]]
table = "public.events"
column = "created_at"
max_age = "90d"
batch_size = 2000
pause_s = 0.2
lock_timeout_s = 0.5
statement_timeout_s = 5

[[policy]]
table = "sessions"
column = "expires_on"
max_age = "1y"

[[policy]]
schema = "odd"
table = "name.with.dots"
column = "at"
max_age = "36h"
"""


def test_parse_full_config() -> None:
    assert [
        PurgePolicy("events", "created_at", Duration(days=90), "public", 2000, 0.2, 0.5, 5.0),
        PurgePolicy("sessions", "expires_on", Duration(years=1)),
        PurgePolicy("name.with.dots", "at", Duration(hours=36), "odd"),
    ] == parse_config(FULL, "retention.toml")


VALID = '[[policy]]\ntable = "t"\ncolumn = "c"\nmax_age = "9d"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[policy]\n", "is not valid TOML"),
        ("", "has no [[policy]] tables"),
        ('[[policies]]\ntable = "t"', "unknown top-level keys ['policies']"),
        ('policy = "x"', "must be an array of tables"),
        ('[[policy]]\ntable = "t"\ncolumn = "c"', "policy 1: missing max_age"),
        ('[[policy]]\ntable = "t"\ncolumn = "c"\nmax_age = "90"', "max_age '90' is not a duration"),
        ('[[policy]]\ntable = "t"\ncolumn = "c"\nmax_age = "0d"', "above zero"),
        ('[[policy]]\ntable = "t"\ncolumn = "c"\nmax_age = 90', "above zero"),
        (VALID + 'sql = "DELETE"', "unknown keys ['sql']"),
        ('[[policy]]\ntable = "a.b.c"\ncolumn = "c"\nmax_age = "9d"', "more than one dot"),
        ('[[policy]]\ntable = ""\ncolumn = "c"\nmax_age = "9d"', "table must be a non-empty string"),
        ('[[policy]]\ntable = 5\ncolumn = "c"\nmax_age = "9d"', "table must be a non-empty string"),
        ('[[policy]]\ntable = "t"\ncolumn = "' + "x" * 64 + '"\nmax_age = "9d"', "longer than PostgreSQL's 63-byte"),
        (
            VALID + "batch_size = 0",
            "batch_size = 0 must be a whole number from 1 to 100000",
        ),
        (VALID + "batch_size = true", "batch_size = True"),
        (VALID + "batch_size = 1.5", "batch_size = 1.5"),
        (
            VALID + 'pause_s = "1"',
            "pause_s = '1' must be a number from 0 to 60",
        ),
        (VALID + "lock_timeout_s = 3", "must be longer than lock"),
        (
            VALID + VALID.replace('"9d"', '"1d"'),
            "policy 2 repeats policy 1",
        ),
    ],
)
def test_parse_refuses_bad_config(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "retention.toml")
    assert message in str(caught.value)


def test_bad_config_lists_every_problem() -> None:
    text = '[[policy]]\ntable = "t"\nmax_age = "soon"\n\n[[policy]]\ncolumn = "c"\nmax_age = "1d"\nbatch = 5\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "retention.toml")
    assert caught.value.problems == [
        "retention.toml, policy 1: missing column",
        "retention.toml, policy 1: max_age 'soon' is not a duration; use a number and a unit, combinable: "
        "y (years), mo (months), w (weeks), d (days), h (hours), e.g. 90d or 1y6mo",
        "retention.toml, policy 2: unknown keys ['batch']; allowed keys are ['batch_size', 'column', "
        "'lock_timeout_s', 'max_age', 'pause_s', 'schema', 'statement_timeout_s', 'table']",
        "retention.toml, policy 2: missing table",
    ]


def test_config_from_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{CONFIG_VARIABLE} is not set"):
        config_from_env({})
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="cannot be read"):
        config_from_env({CONFIG_VARIABLE: str(missing)})
    path = tmp_path / "retention.toml"
    path.write_text('[[policy]]\ntable = "events"\ncolumn = "at"\nmax_age = "30d"\n')
    assert [PurgePolicy("events", "at", Duration(days=30))] == config_from_env({CONFIG_VARIABLE: str(path)})


@pytest.mark.parametrize(
    "table",
    ['schema = "pg_catalog"\ntable = "pg_authid"', 'table = "information_schema.sql_parts"', 'table = "pg_toast.x"'],
)
def test_policies_on_system_schemas_are_refused(table: str) -> None:
    text = f'[[policy]]\n{table}\ncolumn = "created_at"\nmax_age = "30d"\n'
    with pytest.raises(ConfigError, match="retention never deletes from pg_catalog, information_schema, pg_toast"):
        parse_config(text, "retention.toml")


def test_the_earlier_month_spelling_is_refused_with_the_new_one() -> None:
    """``m`` read months here once; now it is minutes everywhere, so a retention setting written so is refused."""
    with pytest.raises(ConfigError) as caught:
        backup_policy_from_env({"BACKUP_KEEP_WITHIN": "6m"})
    assert [
        "BACKUP_KEEP_WITHIN: '6m': 'm' means minutes, and retention is counted in hours or longer; "
        "for months write 'mo', e.g. 6mo"
    ] == caught.value.problems
    with pytest.raises(ConfigError, match=r"for months write 'mo', e\.g\. 1y6mo"):
        parse_config('[[policy]]\ntable = "t"\ncolumn = "c"\nmax_age = "1y6m"\n', "retention.toml")
    assert Duration(months=6) == backup_policy_from_env({"BACKUP_KEEP_WITHIN": "6mo"}).within
