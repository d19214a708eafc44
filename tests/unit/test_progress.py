"""The terminal progress line: percent and ETA from the database size, and log lines never written over it."""

import io

import pytest
import structlog

from railyard.core.logs import configure_logging
from railyard.core.progress import ERASE_LINE, StatusLine, progress_text
from railyard.core.settings import Settings

MB = 1_000_000


@pytest.mark.parametrize(
    ("done", "elapsed_s", "total", "expected"),
    [
        (100 * MB, 2.0, 400 * MB, "backup: 100.0 MB of ~400.0 MB (25%) at 50.0 MB/s, ETA 6s"),
        (40 * MB, 1.0, 4000 * MB, "backup: 40.0 MB of ~4.0 GB (1%) at 40.0 MB/s, ETA 1m"),
        (390 * MB, 1.0, 400 * MB, "backup: 390.0 MB of ~400.0 MB (97%) at 390.0 MB/s, ETA 0s"),
        (500 * MB, 5.0, 400 * MB, "backup: 500.0 MB of ~400.0 MB (99%) at 100.0 MB/s, finishing"),  # estimate passed
        (0, 0.0, 400 * MB, "backup: 0 B of ~400.0 MB (0%) at 0 B/s"),
        (100 * MB, 2.0, None, "backup: 100.0 MB at 50.0 MB/s"),  # a restore: no total known
        (100 * MB, 2.0, 0, "backup: 100.0 MB at 50.0 MB/s"),
    ],
)
def test_progress_text(done: int, elapsed_s: float, total: int | None, expected: str) -> None:
    assert expected == progress_text("backup", done, elapsed_s, total)


def test_a_log_line_goes_above_the_progress_line_which_is_drawn_again() -> None:
    stream = io.StringIO()
    configure_logging(Settings.from_env({"LOG_FORMAT": "console"}), stream=stream)
    with StatusLine(stream) as line:
        line.show("backup: 1.0 MB")
        structlog.get_logger().warning("upload_slow", part=3)
        line.show("backup: 2.0 MB")
    text = stream.getvalue()
    logged, after = text.split("upload_slow", 1)
    assert logged.startswith(ERASE_LINE + "backup: 1.0 MB" + ERASE_LINE)  # erased before the log line
    log_line, redrawn = after.split("\n", 1)
    assert "part=3" in log_line
    assert redrawn == "backup: 1.0 MB" + ERASE_LINE + "backup: 2.0 MB" + ERASE_LINE  # redrawn, then cleared at exit


def test_without_a_progress_line_log_lines_are_untouched() -> None:
    stream = io.StringIO()
    configure_logging(Settings.from_env({"LOG_FORMAT": "json"}), stream=stream)
    structlog.get_logger().info("plain")
    assert "\r" not in stream.getvalue() and stream.getvalue().endswith("\n")
