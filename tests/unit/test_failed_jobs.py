"""The one line of a failure people see in status, failed list and alerts."""

import pytest

from railyard.core.failed_jobs import error_summary

TRACEBACK = """Traceback (most recent call last):
  File "/app/jobs/backup.py", line 10, in run_backup
    raise RetryableError("x")
psycopg.OperationalError: connection failed: server closed the connection
  detail line

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/rq/worker.py", line 1, in perform_job
railyard.core.errors.RetryableError: cannot connect to 127.0.0.1:5432; check DATABASE_URL
"""


@pytest.mark.parametrize(
    ("exc_string", "expected"),
    [
        (TRACEBACK, "railyard.core.errors.RetryableError: cannot connect to 127.0.0.1:5432; check DATABASE_URL"),
        ("refused: 'os.system' is not a Railyard job\nmore", "refused: 'os.system' is not a Railyard job"),
        ("", ""),
        (None, ""),
    ],
)
def test_error_summary(exc_string: str | None, expected: str) -> None:
    assert expected == error_summary(exc_string)
