"""The ``railyard`` command line: run any job now, list and restore backups, status, health.

Errors print one clear sentence on stderr and exit non-zero; ``--debug`` adds the
traceback. Logs go to stderr (readable on a terminal, JSON otherwise); results go to
stdout.
"""

from __future__ import annotations

import functools
import importlib
import io
import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import click

from railyard.cli.context import CliContext
from railyard.core.errors import ConfigError, RailyardError, RetryableError, one_line

if TYPE_CHECKING:
    from railyard.core.redact import Redactor

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(RetryableError):
    """SIGTERM arrived: raised where the command was, so what it holds is let go in order."""


# Each command's module is imported only when that command runs (or its own --help is asked for), so
# `railyard --help` starts in about the time of a bare interpreter. The summaries are the commands' own
# (tests/unit/test_cli_startup.py keeps them in step).
COMMANDS: dict[str, tuple[str, str]] = {
    "audio": ("railyard.cli.audio", "Loudness-normalised, Yoto-ready audio from uploaded files (queue: audio)."),
    "backup": ("railyard.cli.backup", "Back up a PostgreSQL database now (no Redis needed) and print its id and key."),
    "backups": ("railyard.cli.backups", "List and inspect backups."),
    "failed": ("railyard.cli.failed", "Jobs that failed for good (after their retries), on every Railyard queue."),
    "health": (
        "railyard.cli.health",
        "Check Redis, PostgreSQL, storage and the client tools; exit 0 only if all pass.",
    ),
    "migrate": (
        "railyard.cli.migrate",
        "Schema migrations from MIGRATIONS_DIR (or MIGRATE_COMMAND), one migrator at a time.",
    ),
    "prune": (
        "railyard.cli.retention",
        "Delete backups the retention policy (BACKUP_KEEP_*) no longer keeps, and leftovers of crashed runs.",
    ),
    "purge": ("railyard.cli.retention", "Delete rows past their maximum age (policies in the RETENTION_CONFIG file)."),
    "restore": (
        "railyard.cli.restore",
        "Restore BACKUP_ID (or 'latest') into --target-url: in one transaction, or with --jobs connections when "
        "the backup is large and the target empty (on failure, what it created is dropped).",
    ),
    "retention": (
        "railyard.cli.retention",
        "Delete rows past their maximum age (policies in the RETENTION_CONFIG file).",
    ),
    "schedule": ("railyard.cli.schedule", "The scheduler's entries (backups, retention, verification) and their runs."),
    "status": (
        "railyard.cli.status",
        "Queues, workers, failed jobs, schedules and the newest backup of each database.",
    ),
    "verify": (
        "railyard.cli.verify",
        "Restore BACKUP_ID (default: the newest of each database) into a scratch database and check it.",
    ),
    "web": (
        "railyard.cli.web",
        "Serve the dashboard: series, backups, verifications, schedule, queues, failed jobs and /metrics.",
    ),
}


class RailyardGroup(click.Group):
    """Loads each command when it is used, and turns Railyard's (and its clients') errors into one line
    and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command: click.Command = getattr(module, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries above, without importing every command."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))  # click's own shortening
            for name, (_, summary) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and exits: click prints them its own way
        except Exception as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            if _expected(exc):
                click.echo(f"error: {_scrub(_one_line(exc), ctx)}", err=True)
                ctx.exit(_exit_code(exc))
            # A defect, not the user's doing: still one line (the traceback with --debug), never a raw dump.
            detail = _scrub(_one_line(exc), ctx)
            click.echo(f"error: internal error ({detail}); run again with --debug for the traceback", err=True)
            ctx.exit(EXIT_ERROR)


def _expected(exc: Exception) -> bool:
    """Railyard's own errors, its clients' (PostgreSQL, Redis) and the operating system's: one line, no traceback."""
    if isinstance(exc, RailyardError | OSError):
        return True
    import psycopg  # loaded already when a command raised one of theirs
    import redis

    return isinstance(exc, psycopg.Error | redis.RedisError)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ConfigError) else one_line(exc)  # a ConfigError lists its problems


def _scrub(text: str, ctx: click.Context) -> str:
    from railyard.core.redact import Redactor

    obj = ctx.find_object(CliContext)
    return Redactor(obj.known_secrets() if obj else CliContext().known_secrets())(text)


@click.group(cls=RailyardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="railyard", prog_name="railyard")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Railyard: PostgreSQL backups, restores, retention, migrations and audio jobs on RQ.

    Configuration comes from the environment (REDIS_URL, DATABASE_URL,
    BACKUP_STORAGE_URL, AWS_* ...); see the README for every variable.
    """
    ctx.obj = CliContext(debug=debug)


class RedactingStream(io.TextIOBase):
    """A text stream that passes every write through the redaction layer first.

    The CLI's stdout and stderr are wrapped in it, so nothing the command prints (results,
    warnings, errors, log lines) can carry a configured secret.
    """

    def __init__(self, stream: TextIO, redact: Callable[[], Redactor]):
        self._stream = stream
        self._make_redactor = redact
        self._redact: Redactor | None = None

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def write(self, text: str) -> int:
        if self._redact is None:
            self._redact = self._make_redactor()  # built on the first write: the environment is read once
        self._stream.write(self._redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: child processes are stopped and locks released on the way out; a second SIGTERM must not cut that short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("stopped by SIGTERM before finishing; what it had started was stopped, run it again")


@functools.cache
def _redactor() -> Redactor:
    from railyard.core.redact import Redactor

    return Redactor(CliContext().known_secrets())


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.stdout = RedactingStream(sys.stdout, _redactor)
    sys.stderr = RedactingStream(sys.stderr, _redactor)
    cli(prog_name="railyard")


if __name__ == "__main__":
    main()
