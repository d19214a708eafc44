"""A progress line on a terminal that log lines never write over.

The line lives at the bottom of the terminal: :class:`StatusLine` redraws it in place with
``\\r``, and the logging handler (railyard.core.logs) erases it before writing a log line and
draws it again below. :func:`progress_text` is the pure part: bytes, rate, percent and ETA.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import IO

from railyard.core.durations import format_duration

ERASE_LINE = "\r\x1b[K"
# pg_dump's output is usually smaller than pg_database_size (indexes are not dumped), so the
# estimate stays below 100% until the backup says it is done.
MAX_ESTIMATED_PERCENT = 99

_lock = threading.Lock()
_active: StatusLine | None = None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def progress_text(label: str, done: int, elapsed_s: float, total: int | None = None) -> str:
    """``backup: 120.0 MB of ~400.0 MB (30%) at 40.0 MB/s, ETA 7s`` (no percent or ETA without a total)."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    text = f"{label}: {human_bytes(done)}"
    if total:
        percent = min(MAX_ESTIMATED_PERCENT, int(done * 100 / total))
        text += f" of ~{human_bytes(total)} ({percent}%)"
    text += f" at {human_bytes(rate)}/s"
    if total and rate > 0:
        left_s = max(0.0, (total - done) / rate)
        text += f", ETA {format_duration(timedelta(seconds=left_s))}" if done < total else ", finishing"
    return text


class StatusLine:
    """The one progress line of ``stream``; at most one is active in a process."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.text = ""

    def __enter__(self) -> StatusLine:
        global _active
        with _lock:
            _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        with _lock:
            if self.text:
                self.stream.write(ERASE_LINE)
                self.stream.flush()
            self.text = ""
            _active = None

    def show(self, text: str) -> None:
        with _lock:
            self.text = text
            self.stream.write(ERASE_LINE + text)
            self.stream.flush()


def around_write(stream: IO[str], write: Callable[[], None]) -> None:
    """Run ``write()`` (which writes one log record to ``stream``) with the progress line moved below it."""
    with _lock:
        line = _active if _active is not None and _active.stream is stream and _active.text else None
        if line is not None:
            stream.write(ERASE_LINE)
        try:
            write()
        finally:
            if line is not None:
                stream.write(line.text)
                stream.flush()
