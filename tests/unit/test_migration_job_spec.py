"""The migration job's registry entry: its queue, its timeout, and which failures it retries."""

from __future__ import annotations

import psycopg
import pytest
from rq.timeouts import JobTimeoutException

from jobs.migrations.apply import MigrationFailed
from jobs.migrations.files import MigrationFileError
from jobs.migrations.runner import PlanError
from railyard.core import registry
from railyard.core.errors import LockBusyError, RetryableError

SPEC = registry.require_spec("jobs.migrate.run_migrations")


def test_queue_and_timeout() -> None:
    assert ("migration", registry.HOUR_S) == (SPEC.queue, SPEC.timeout_s)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (LockBusyError("a table stayed locked through every retry"), True),
        (RetryableError("lost the connection"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (ConnectionError("reset"), True),
        (MigrationFailed("0002_b.sql failed: division by zero"), False),
        (PlanError("0001_a.sql changed after it was applied"), False),
        (MigrationFileError("bad name"), False),
        (JobTimeoutException("an hour was not enough"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException, retryable: bool) -> None:
    assert retryable == SPEC.is_retryable(exc)
