"""An external migrator (``MIGRATE_COMMAND``, e.g. ``alembic upgrade head``) with its output streamed to the log.

The command is run directly, not through a shell, with DATABASE_URL in its environment:
the password never appears in its argv (where ``ps`` would show it), and a command that
spells the password out is refused. It runs in a process group of its own
(railyard.core.childproc): whatever ends the run (an error, the job's timeout, SIGTERM, Railyard
dying) ends the command and everything it started, before the migration lock is let go.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping, Sequence

import structlog

from railyard.core import childproc
from railyard.core.conninfo import password_forms
from railyard.core.errors import PermanentError
from railyard.core.redact import Redactor, environment_secrets, spellings

log = structlog.get_logger()


def refuse_secret_in_argv(argv: Sequence[str], database_url: str) -> None:
    forms = {form for password in password_forms(database_url) for form in spellings(password)}
    if forms and any(form in arg for arg in argv for form in forms):
        raise PermanentError(
            "MIGRATE_COMMAND contains the database password; remove it: the command receives DATABASE_URL "
            "in its environment"
        )


def run_command(argv: Sequence[str], database_url: str, environ: Mapping[str, str] | None = None) -> None:
    """Run ``argv`` to completion, logging each output line; raise if it exits non-zero."""
    refuse_secret_in_argv(argv, database_url)
    redact = Redactor((*password_forms(database_url), *environment_secrets(environ)))
    env = dict(os.environ if environ is None else environ)
    env["DATABASE_URL"] = database_url
    shown = shlex.join(argv)
    log.info("migrate_command_started", command=shown)
    t0 = time.monotonic()
    try:
        child = childproc.start(argv, env=env, stdout=childproc.PIPE, stderr=childproc.STDOUT)
    except OSError as exc:
        raise PermanentError(
            f"MIGRATE_COMMAND could not start {argv[0]!r}: {exc.strerror}; install it or give its full path"
        ) from exc
    with child:
        assert child.stdout is not None
        for raw in child.stdout:
            log.info("migrate_command_output", line=redact(raw.decode(errors="replace").rstrip("\n")))
        code = child.wait()
    duration_s = round(time.monotonic() - t0, 3)
    if code != 0:
        log.error("migrate_command_failed", command=shown, exit_code=code, duration_s=duration_s)
        raise PermanentError(
            f"MIGRATE_COMMAND ({shown}) exited with status {code}; its output is in the log (migrate_command_output)"
        )
    log.info("migrate_command_finished", command=shown, duration_s=duration_s)
