"""Logging set-up, called once at each entry point (worker, scheduler, CLI).

structlog renders both its own events and the standard library's (rq, boto3) through one
handler, so every line has the same shape: JSON lines in production, readable console
output locally. Job context (job_id, queue, func, attempt) is bound in contextvars by the
worker and merged into every line. A last processor scrubs known secret values from the
rendered line, whatever path they took to get there.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

from railyard.core import progress
from railyard.core.redact import Redactor, environment_secrets
from railyard.core.settings import Settings

# Libraries that are chatty at INFO and say nothing an operator needs.
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "apprise")


class SecretScrubber:
    """Replace every spelling of each known secret with ``***`` in the final rendered line."""

    def __init__(self, secrets: Iterable[str]):
        self._redact = Redactor(secrets)

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        if isinstance(event, str):
            return self._redact(event)
        return event


class _Handler(logging.StreamHandler):
    """Writes each line above the terminal's progress line, if one is showing."""

    def emit(self, record: logging.LogRecord) -> None:
        progress.around_write(self.stream, lambda: super(_Handler, self).emit(record))


def configure_logging(settings: Settings, stream: Any = None) -> None:
    """Route structlog and stdlib logging to one handler on ``stream`` (stderr by default)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())

    # In place: loggers cached by an earlier call hold this list and follow the new configuration.
    processors = structlog.get_config()["processors"]
    processors[:] = [*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
            SecretScrubber((*settings.secrets, *environment_secrets())),
        ],
    )
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # rq installs its own handlers when it finds none; make its records reach ours.
    for name in ("rq", "rq.worker", "rq.scheduler", "rq_scheduler"):
        rq_logger = logging.getLogger(name)
        rq_logger.handlers.clear()
        rq_logger.propagate = True
