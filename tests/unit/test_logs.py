"""Logging: JSON lines with job context from contextvars, and secrets scrubbed."""

import io
import json
import logging

import structlog
import structlog.testing

from railyard.core.logs import SecretScrubber, configure_logging
from railyard.core.settings import Settings


def test_json_lines_carry_bound_job_context_and_hide_secrets() -> None:
    stream = io.StringIO()
    settings = Settings.from_env({"LOG_FORMAT": "json", "DATABASE_URL": "postgresql://u:pw-XYZ-1@h/db"})
    configure_logging(settings, stream=stream)
    structlog.contextvars.bind_contextvars(job_id="j1", queue="backup", func="jobs.backup.run_backup", attempt=2)
    try:
        structlog.get_logger().info("backup_uploaded", bytes=10, url="postgresql://u:pw-XYZ-1@h/db")
        logging.getLogger("rq.worker").info("stdlib line from %s", "rq")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert ("backup_uploaded", "j1", "backup", 2, 10) == (
        first["event"],
        first["job_id"],
        first["queue"],
        first["attempt"],
        first["bytes"],
    )
    assert "pw-XYZ-1" not in stream.getvalue()
    assert ("stdlib line from rq", "j1") == (second["event"], second["job_id"])


def test_scrubber_replaces_longest_secret_first() -> None:
    scrub = SecretScrubber(["abcd", "abcdefgh", ""])
    assert "x *** y ***" == scrub(None, "info", "x abcdefgh y abcd")


def test_a_logger_cached_under_an_earlier_configuration_follows_the_next() -> None:
    """The CLI configures logging on each in-process call: loggers cached before must not keep the old processors."""
    configure_logging(Settings.from_env({"LOG_FORMAT": "json"}), stream=io.StringIO())
    log = structlog.get_logger("tests.cached")
    log.info("first_use_caches_the_logger")
    configure_logging(Settings.from_env({"LOG_FORMAT": "json"}), stream=io.StringIO())
    with structlog.testing.capture_logs() as logs:
        log.info("captured", n=1)
    assert [("captured", 1)] == [(e["event"], e["n"]) for e in logs]
