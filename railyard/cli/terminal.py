"""What the commands show on a terminal besides their results: a progress line, and warnings."""

from __future__ import annotations

import sys

import click

from railyard.core import progress
from railyard.core.conninfo import password_forms
from railyard.core.settings import Settings


class ProgressPrinter:
    """A progress callback drawing one status line on stderr: ``(done, ..., elapsed_s)``, or from a
    backup ``(raw, stored, elapsed_s, database_size)``, which adds percent and ETA."""

    def __init__(self, label: str):
        self.label = label
        self.line = progress.StatusLine(sys.stderr)

    def __call__(self, done: int, *rest: float) -> None:
        if len(rest) == 3:
            _, elapsed, total = rest
            self.line.show(progress.progress_text(self.label, done, elapsed, int(total)))
        else:
            self.line.show(progress.progress_text(self.label, done, rest[-1] if rest else 0.0))


def progress_printer(settings: Settings, label: str) -> ProgressPrinter | None:
    """None in JSON-log mode or when stderr is not a terminal."""
    if settings.log_format == "json" or not sys.stderr.isatty():
        return None
    return ProgressPrinter(label)


def warn_password_in_argv(ctx: click.Context, param: str, url: str | None, variable: str) -> None:
    """Passwords in command-line arguments are visible to every user of the machine (ps, /proc)."""
    if url and password_forms(url) and ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE:
        click.echo(
            f"warning: the URL passed with --{param.replace('_', '-')} contains a password, which other processes "
            f"can read from this command's arguments; set {variable} or PGPASSWORD instead",
            err=True,
        )
