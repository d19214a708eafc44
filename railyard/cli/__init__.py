"""The ``railyard`` command line: run any job now, list and restore backups, status, health.

Errors print one clear sentence on stderr and exit non-zero; ``--debug`` adds the
traceback. Logs go to stderr (readable on a terminal, JSON otherwise); results go to
stdout.
"""

from __future__ import annotations

import io
import signal
import sys
import traceback
from types import FrameType
from typing import Any, TextIO

import click
import psycopg
import redis

from railyard import __version__
from railyard.cli.context import CliContext
from railyard.core.errors import ConfigError, RailyardError, RetryableError, one_line
from railyard.core.redact import Redactor

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(RetryableError):
    """SIGTERM arrived: raised where the command was, so what it holds is let go in order."""


class RailyardGroup(click.Group):
    """Turns Railyard's (and its clients') errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and exits: click prints them its own way
        except (RailyardError, psycopg.Error, redis.RedisError, OSError) as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            click.echo(f"error: {_scrub(_one_line(exc), ctx)}", err=True)
            ctx.exit(_exit_code(exc))
        except Exception as exc:
            # A defect, not the user's doing: still one line (the traceback with --debug), never a raw dump.
            if ctx.params.get("debug"):
                traceback.print_exc()
            detail = _scrub(_one_line(exc), ctx)
            click.echo(f"error: internal error ({detail}); run again with --debug for the traceback", err=True)
            ctx.exit(EXIT_ERROR)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ConfigError) else one_line(exc)  # a ConfigError lists its problems


def _scrub(text: str, ctx: click.Context) -> str:
    obj = ctx.find_object(CliContext)
    return Redactor(obj.known_secrets() if obj else CliContext().known_secrets())(text)


@click.group(cls=RailyardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="railyard")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Railyard: PostgreSQL backups, restores, retention, migrations and audio jobs on RQ.

    Configuration comes from the environment (REDIS_URL, DATABASE_URL,
    BACKUP_STORAGE_URL, AWS_* ...); see the README for every variable.
    """
    ctx.obj = CliContext(debug=debug)


def _register() -> None:
    from railyard.cli import backups, failed, health, migrate, status

    cli.add_command(health.health)
    cli.add_command(backups.backup)
    cli.add_command(backups.backups)
    cli.add_command(backups.restore)
    cli.add_command(backups.verify)
    cli.add_command(migrate.migrate)
    cli.add_command(status.status)
    cli.add_command(failed.failed)

    from railyard.cli import schedule

    cli.add_command(schedule.schedule)

    from railyard.cli import audio

    cli.add_command(audio.audio)

    from railyard.cli import retention

    cli.add_command(retention.prune)
    cli.add_command(retention.retention)

    from railyard.cli import web

    cli.add_command(web.web)


_register()


class RedactingStream(io.TextIOBase):
    """A text stream that passes every write through the redaction layer first.

    The CLI's stdout and stderr are wrapped in it, so nothing the command prints (results,
    warnings, errors, log lines) can carry a configured secret.
    """

    def __init__(self, stream: TextIO, redact: Redactor):
        self._stream = stream
        self._redact = redact

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def write(self, text: str) -> int:
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


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    redact = Redactor(CliContext().known_secrets())
    sys.stdout = RedactingStream(sys.stdout, redact)
    sys.stderr = RedactingStream(sys.stderr, redact)
    cli(prog_name="railyard")


if __name__ == "__main__":
    main()
