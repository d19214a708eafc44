"""ALERT_WEBHOOK_URL, HEALTHCHECK_PING_URL, BACKUP_STALE_AFTER and the worker's knobs."""

from datetime import timedelta

import pytest

from railyard.core import registry
from railyard.core.alert_config import AlertConfig
from railyard.core.errors import ConfigError
from railyard.core.worker_config import WorkerConfig
from railyard.ops.status_config import StatusConfig


def test_alert_config_defaults() -> None:
    assert AlertConfig(None, None, timedelta(hours=26)) == AlertConfig.from_env({})


def test_alert_config_reads_everything() -> None:
    config = AlertConfig.from_env(
        {
            "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T/B/secret",
            "HEALTHCHECK_PING_URL": "https://hc-ping.com/uuid/",
            "BACKUP_STALE_AFTER": "2d",
        }
    )
    assert ("https://hooks.example.com/services/T/B/secret", "https://hc-ping.com/uuid", timedelta(days=2)) == (
        config.webhook_url,
        config.ping_url,
        config.stale_after,
    )
    assert "secret" not in repr(config)


def test_alert_config_reports_every_problem_without_echoing_urls() -> None:
    with pytest.raises(ConfigError) as info:
        AlertConfig.from_env(
            {"ALERT_WEBHOOK_URL": "ftp://tok@x", "HEALTHCHECK_PING_URL": "hc-ping.com/x", "BACKUP_STALE_AFTER": "soon"}
        )
    problems = info.value.problems
    assert 3 == len(problems)
    assert problems[0].startswith("ALERT_WEBHOOK_URL is not an http(s) URL")
    assert problems[2].startswith("BACKUP_STALE_AFTER: 'soon' is not a duration")
    assert "tok" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, WorkerConfig(60, 1.0, 15)),
        ({"WORKER_HEARTBEAT_GRACE_S": "5", "RAILYARD_RETRY_BACKOFF_SCALE": "0.01"}, WorkerConfig(5, 0.01)),
        ({"WORKER_RESCUE_INTERVAL_S": "5"}, WorkerConfig(60, 1.0, 5)),
        ({"METRICS_PORT": "9108"}, WorkerConfig(metrics_port=9108)),
        ({"METRICS_PORT": "0"}, WorkerConfig(metrics_port=None)),
    ],
)
def test_worker_tuning(env: dict[str, str], expected: WorkerConfig) -> None:
    assert expected == WorkerConfig.from_env(env)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"WORKER_HEARTBEAT_GRACE_S": "0"}, "WORKER_HEARTBEAT_GRACE_S='0' is not a whole number"),
        ({"WORKER_HEARTBEAT_GRACE_S": "1.5"}, "WORKER_HEARTBEAT_GRACE_S='1.5' is not a whole number"),
        ({"RAILYARD_RETRY_BACKOFF_SCALE": "0"}, "RAILYARD_RETRY_BACKOFF_SCALE='0' is not a number above 0"),
        ({"RAILYARD_RETRY_BACKOFF_SCALE": "nan"}, "RAILYARD_RETRY_BACKOFF_SCALE='nan' is not a number above 0"),
        ({"RAILYARD_RETRY_BACKOFF_SCALE": "11"}, "RAILYARD_RETRY_BACKOFF_SCALE='11' is not a number above 0"),
        ({"WORKER_RESCUE_INTERVAL_S": "0"}, "WORKER_RESCUE_INTERVAL_S=0 is out of range"),
        ({"WORKER_RESCUE_INTERVAL_S": "soon"}, "WORKER_RESCUE_INTERVAL_S='soon' is not a whole number"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT=70000 is out of range"),
    ],
)
def test_worker_tuning_errors(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env(env)
    assert [problem] == [p[: len(problem)] for p in info.value.problems]


@pytest.mark.parametrize(
    ("backoff", "scale", "expected"),
    [((300, 900), 1.0, [300, 900]), ((300, 900), 0.01, [3, 9]), ((60,), 0.001, [1]), ((60,), 2, [120])],
)
def test_scaled_backoff(backoff: tuple[int, ...], scale: float, expected: list[int]) -> None:
    assert expected == registry.scaled_backoff(backoff, scale)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, StatusConfig(timedelta(minutes=10), True)),
        ({"STATUS_WORKER_MISSING_AFTER": "off", "STATUS_REQUIRE_SCHEDULE": "false"}, StatusConfig(None, False)),
        ({"STATUS_WORKER_MISSING_AFTER": "1h", "STATUS_REQUIRE_SCHEDULE": "TRUE"}, StatusConfig(timedelta(hours=1))),
    ],
)
def test_status_config(env: dict[str, str], expected: StatusConfig) -> None:
    assert expected == StatusConfig.from_env(env)


def test_status_config_reports_both_problems() -> None:
    with pytest.raises(ConfigError) as info:
        StatusConfig.from_env({"STATUS_WORKER_MISSING_AFTER": "0m", "STATUS_REQUIRE_SCHEDULE": "maybe"})
    assert ["STATUS_WORKER_MISSING_AFTER: '0m' is zero", "STATUS_REQUIRE_SCHEDULE='maybe' is not true or false"] == [
        p.split(";")[0] for p in info.value.problems
    ]
