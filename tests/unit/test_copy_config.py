"""BACKUP_COPY_STORAGE_URL and BACKUP_COPY_AWS_*: parsed once, every problem named."""

from __future__ import annotations

import pytest

from jobs.backup.copy_config import CopyConfig
from jobs.environment import environment_problems
from jobs.retention.config import backup_policy_from_env, copy_policy_from_env
from railyard.core.errors import ConfigError
from railyard.core.storage.access import S3Access

OWN_KEYS = {"BACKUP_COPY_AWS_ACCESS_KEY_ID": "AKCOPY", "BACKUP_COPY_AWS_SECRET_ACCESS_KEY": "copy-secret-value"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"BACKUP_COPY_STORAGE_URL": " "}, None),
        ({"BACKUP_COPY_STORAGE_URL": "s3://offsite/pg"}, CopyConfig("s3://offsite/pg")),
        (
            {"BACKUP_COPY_STORAGE_URL": "s3://offsite", **OWN_KEYS, "BACKUP_COPY_AWS_REGION": "eu-central-003"},
            CopyConfig("s3://offsite", S3Access("AKCOPY", "copy-secret-value", "eu-central-003")),
        ),
        (
            {
                "BACKUP_COPY_STORAGE_URL": "s3://b",
                **OWN_KEYS,
                "BACKUP_COPY_AWS_ENDPOINT_URL_S3": "https://s3.b2.example",
            },
            CopyConfig("s3://b", S3Access("AKCOPY", "copy-secret-value", "", "https://s3.b2.example")),
        ),
        ({"BACKUP_COPY_STORAGE_URL": "/mnt/offsite"}, CopyConfig("/mnt/offsite")),
    ],
)
def test_valid_settings(env: dict[str, str], expected: CopyConfig | None) -> None:
    assert expected == CopyConfig.from_env(env)


@pytest.mark.parametrize(
    ("env", "problems"),
    [
        (
            {"BACKUP_COPY_STORAGE_URL": "s3://main/pg", "BACKUP_STORAGE_URL": "s3://main/pg/"},
            [
                "BACKUP_COPY_STORAGE_URL is the same place as BACKUP_STORAGE_URL; a copy must live in another "
                "bucket (ideally with another provider)"
            ],
        ),
        (
            {"BACKUP_COPY_STORAGE_URL": "s3://"},
            ["BACKUP_COPY_STORAGE_URL='s3://' names no bucket; use s3://bucket/optional/prefix"],
        ),
        (
            {"BACKUP_COPY_STORAGE_URL": "s3://b", "BACKUP_COPY_AWS_ACCESS_KEY_ID": "AKCOPY"},
            [
                "set both BACKUP_COPY_AWS_ACCESS_KEY_ID and BACKUP_COPY_AWS_SECRET_ACCESS_KEY, "
                "or neither (then AWS_* are used)"
            ],
        ),
        (
            {"BACKUP_COPY_STORAGE_URL": "s3://b", **OWN_KEYS, "BACKUP_COPY_AWS_ENDPOINT_URL_S3": "s3.b2.example"},
            ["BACKUP_COPY_AWS_ENDPOINT_URL_S3='s3.b2.example' is not an http(s) URL; e.g. https://s3.example.com"],
        ),
        (
            OWN_KEYS,
            [
                "BACKUP_COPY_AWS_ACCESS_KEY_ID, BACKUP_COPY_AWS_SECRET_ACCESS_KEY are set but BACKUP_COPY_STORAGE_URL "
                "is not; set it to the copy's bucket (s3://bucket/prefix) or unset them"
            ],
        ),
    ],
)
def test_every_problem_is_named(env: dict[str, str], problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        CopyConfig.from_env(env)
    assert problems == caught.value.problems


def test_start_up_lists_copy_problems_with_the_others() -> None:
    env = {"BACKUP_COPY_STORAGE_URL": "s3://b", "BACKUP_COPY_AWS_SECRET_ACCESS_KEY": "copy-secret-value"}
    problems = environment_problems({**env, "LOG_LEVEL": "loud"})
    assert "LOG_LEVEL='LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in problems
    assert (
        "set both BACKUP_COPY_AWS_ACCESS_KEY_ID and BACKUP_COPY_AWS_SECRET_ACCESS_KEY, or neither (then AWS_* are used)"
        in problems
    )
    assert [] == [p for p in problems if "copy-secret-value" in p]


def test_the_copy_secret_is_hidden_in_repr() -> None:
    config = CopyConfig.from_env({"BACKUP_COPY_STORAGE_URL": "s3://b", **OWN_KEYS})
    assert "copy-secret-value" not in repr(config)


def test_copy_retention_defaults_to_the_primarys_policy_variable_by_variable() -> None:
    env = {"BACKUP_KEEP_DAILY": "7", "BACKUP_KEEP_WEEKLY": "4", "BACKUP_MIN_KEEP": "2", "BACKUP_COPY_KEEP_WEEKLY": "12"}
    primary, copy = backup_policy_from_env(env), copy_policy_from_env(env)
    assert (7, 4, 2) == (primary.daily, primary.weekly, primary.min_keep)
    assert (7, 12, 2) == (copy.daily, copy.weekly, copy.min_keep)
    assert primary == copy_policy_from_env({k: v for k, v in env.items() if not k.startswith("BACKUP_COPY_")})


def test_copy_retention_problems_name_the_copy_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        copy_policy_from_env({"BACKUP_COPY_KEEP_LAST": "many", "BACKUP_COPY_KEEP_WITHIN": "soon"})
    assert 2 == len(caught.value.problems)
    assert caught.value.problems[0].startswith("BACKUP_COPY_KEEP_LAST")
    assert caught.value.problems[1].startswith("BACKUP_COPY_KEEP_WITHIN: ")
