"""Restore with a pg_restore of major 17 or later into a server older than 17.

pg_restore 17 and later open every restore with ``SET transaction_timeout = 0``, a setting
PostgreSQL 15 and 16 do not have: with --single-transaction that one error rolls back the
whole restore. For such a target pg_restore writes its SQL script instead (still one
``BEGIN`` ... ``COMMIT``), a relay drops that line from the script's preamble, and psql of
the same version runs the rest with ON_ERROR_STOP. psql's input is closed only after
pg_restore exited 0; otherwise psql is killed, and a script cut short has no ``COMMIT``
anyway: the target rolls back either way.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import IO

from railyard.core.errors import PermanentError
from railyard.core.pgtools import PgTool, tool_version

FIRST_MAJOR_WITH_SETTING = 17  # transaction_timeout appeared in PostgreSQL 17
UNKNOWN_SETTING_LINE = b"SET transaction_timeout = 0;\n"
PREAMBLE_MAX_LINES = 64  # the line sits among the first ~20; data never comes this early
RELAY_CHUNK_BYTES = 1024 * 1024


def needs_script(pg_restore: PgTool, server_major: int) -> bool:
    return pg_restore.major >= FIRST_MAJOR_WITH_SETTING > server_major


def psql_beside(pg_restore: PgTool) -> PgTool:
    """The psql installed with ``pg_restore``: it must understand the script's meta-commands."""
    path = str(Path(pg_restore.path).with_name("psql"))
    psql = tool_version(path)
    if psql is None or psql.major < pg_restore.major:
        raise PermanentError(
            f"restoring with pg_restore {pg_restore.version} into a server older than {FIRST_MAJOR_WITH_SETTING} "
            f"needs the psql installed beside it ({path}), which was not found; install it, or set PG_BIN_DIR "
            "to a client of the server's own major version"
        )
    return psql


def psql_argv(psql: PgTool, argv_url: str) -> list[str]:
    return [psql.path, "--no-psqlrc", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1", f"--dbname={argv_url}"]


class Relay(threading.Thread):
    """Copies pg_restore's script to psql, without the one line an older server rejects."""

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.complete = False  # the whole script reached psql
        self.refused = False  # psql stopped reading: it is exiting with its error

    def run(self) -> None:
        try:
            for _ in range(PREAMBLE_MAX_LINES):
                line = self.source.readline()
                if not line:
                    self.complete = True
                    return
                if line == UNKNOWN_SETTING_LINE:
                    break
                self.sink.write(line)
            while chunk := self.source.read1(RELAY_CHUNK_BYTES):  # type: ignore[attr-defined]
                self.sink.write(chunk)
            self.sink.flush()
            self.complete = True
        except (BrokenPipeError, ValueError):
            # psql stopped (its error says why): stop pg_restore too, by closing its output.
            self.refused = True
            with contextlib.suppress(OSError):
                self.source.close()
