"""Settings from the environment: defaults, validation of every variable at once, redaction."""

import pytest

from railyard.core.errors import ConfigError
from railyard.core.settings import DEFAULT_QUEUES, Settings, redact_url, strip_password


def test_defaults_need_nothing_external() -> None:
    settings = Settings.from_env({})
    assert "redis://localhost:6379/0" == settings.redis_url
    assert "./backups" == settings.backup_storage_url
    assert "development" == settings.environment
    assert DEFAULT_QUEUES == settings.queues


def test_railway_environment_name_is_the_fallback() -> None:
    assert "staging" == Settings.from_env({"RAILWAY_ENVIRONMENT_NAME": "staging"}).environment
    assert "prod" == Settings.from_env({"RAILWAY_ENVIRONMENT_NAME": "staging", "ENVIRONMENT": "prod"}).environment


@pytest.mark.parametrize("url", ["postgres://u:p@h:5432/db", "postgresql://u@h/db?sslmode=require"])
def test_both_postgres_schemes_are_accepted(url: str) -> None:
    assert url == Settings.from_env({"DATABASE_URL": url}).database_url


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "REDIS_URL": "http://:hunter2@cache:6379",
        "DATABASE_URL": "mysql://root:hunter2@db/app",
        "BACKUP_STORAGE_URL": "ftp://host/x",
        "S3_ADDRESSING_STYLE": "sideways",
        "LOG_LEVEL": "LOUD",
        "WORKER_QUEUES": "backup,emails",
        "REDIS_RECONNECT_TIMEOUT_S": "forever",
        "RAILYARD_SERIALIZER": "msgpack",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = str(info.value)
    for name in (
        "REDIS_URL",
        "DATABASE_URL",
        "BACKUP_STORAGE_URL",
        "S3_ADDRESSING_STYLE",
        "LOG_LEVEL",
        "WORKER_QUEUES",
        "REDIS_RECONNECT_TIMEOUT_S",
        "RAILYARD_SERIALIZER",
    ):
        assert name in message
    assert 8 == len(info.value.problems)
    assert "hunter2" not in message


def test_the_serializer_is_pickle_unless_set() -> None:
    assert "pickle" == Settings.from_env({}).serializer
    assert "pickle" == Settings.from_env({"RAILYARD_SERIALIZER": "  "}).serializer


@pytest.mark.parametrize(("raw", "expected"), [("json", "json"), (" JSON ", "json"), ("pickle", "pickle")])
def test_the_serializer_is_read_case_insensitively(raw: str, expected: str) -> None:
    assert expected == Settings.from_env({"RAILYARD_SERIALIZER": raw}).serializer


@pytest.mark.parametrize("raw", ["yaml", "msgpack", "rq.serializers.JSONSerializer", "jsonn", "pickle,json"])
def test_an_unknown_serializer_names_the_allowed_values(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"RAILYARD_SERIALIZER": raw})
    [problem] = info.value.problems
    assert problem.startswith(f"RAILYARD_SERIALIZER={raw!r} is not one of pickle, json; use json when every producer")


def test_production_requires_database_url() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        Settings.from_env({"ENVIRONMENT": "production"})


def test_storage_url_must_not_embed_credentials() -> None:
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        Settings.from_env({"BACKUP_STORAGE_URL": "s3://key:secret@bucket/prefix"})


def test_repr_hides_passwords_and_secrets() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "rediss://default:redis-pw-1@cache:6380/0",
            "DATABASE_URL": "postgresql://app:db-pw-2@db:5432/app",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-3",
        }
    )
    text = repr(settings) + str(settings)
    for secret in ("redis-pw-1", "db-pw-2", "aws-secret-3"):
        assert secret not in text
    assert {"redis-pw-1", "db-pw-2", "aws-secret-3"} == set(settings.secrets)


@pytest.mark.parametrize(
    ("url", "redacted", "stripped"),
    [
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db", "postgresql://u@h:5432/db"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0", "redis://:pw@cache:6379/0".replace(":pw", "")),
        ("postgresql://u@h/db", "postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:p@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db", "postgresql://u@[::1]:5432/db"),
    ],
)
def test_redact_and_strip(url: str, redacted: str, stripped: str) -> None:
    assert redacted == redact_url(url)
    assert stripped == strip_password(url)


def test_redis_reconnect_timeout_defaults_to_a_minute_and_zero_turns_it_off() -> None:
    assert 60 == Settings.from_env({}).redis_reconnect_timeout_s
    assert 0 == Settings.from_env({"REDIS_RECONNECT_TIMEOUT_S": "0"}).redis_reconnect_timeout_s
    with pytest.raises(ConfigError, match="REDIS_RECONNECT_TIMEOUT_S=7200 is out of range"):
        Settings.from_env({"REDIS_RECONNECT_TIMEOUT_S": "7200"})


@pytest.mark.parametrize("raw", ["\uff11\uff12", "1_000", "12.0", "0x10", "\u0661"])
def test_whole_numbers_are_ascii_digits_only(raw: str) -> None:
    """Full-width or Arabic-Indic digits and underscores are no whole number, though int() takes them."""
    with pytest.raises(ConfigError, match=r"REDIS_RECONNECT_TIMEOUT_S=.* is not a whole number"):
        Settings.from_env({"REDIS_RECONNECT_TIMEOUT_S": raw})


@pytest.mark.parametrize(
    ("raw", "ok"), [("1.5", True), ("2e1", True), ("nan", False), ("inf", False), ("\uff11", False)]
)
def test_numbers_are_finite_and_ascii(raw: str, ok: bool) -> None:
    from railyard.core.envparse import parse_float

    if ok:
        assert float(raw) == parse_float(raw)
    else:
        with pytest.raises(ValueError):
            parse_float(raw)


def test_repr_hides_a_key_value_password() -> None:
    settings = Settings.from_env({"DATABASE_URL": "host=db dbname=app password='s3cret pw'"})
    assert "s3cret" not in repr(settings) and "s3cret pw" in settings.secrets
