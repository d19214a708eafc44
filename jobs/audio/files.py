"""The audio files table: read a row, claim it for processing, record the outcome.

Every change of status is one conditional UPDATE, so two workers can never both
process a file: the claim moves ``pending``/``failed``/``rejected`` (or a ``processing``
row whose worker stopped sending heartbeats, or whose claim the same job made on an
attempt that is over) to ``processing`` and bumps ``attempts``.
That attempt number is the claim's token: heartbeats and the final update only touch
the row while it still carries it, so a worker presumed dead cannot overwrite the
work of the one that took over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from railyard.core.errors import PermanentError, RetryableError, first_line

CLAIMABLE = ("pending", "failed", "rejected")
COLUMNS = (
    "id",
    "source_key",
    "status",
    "error",
    "source_sha256",
    "output_key",
    "attempts",
    "updated_at",
)
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class AudioFile:
    id: str
    source_key: str
    status: str
    error: str | None
    source_sha256: str | None
    output_key: str | None
    attempts: int
    updated_at: Any


@dataclass(frozen=True)
class Result:
    """What a finished run writes to a ``ready`` row."""

    source_sha256: str
    source_bytes: int
    source_format: str
    output_key: str
    format: str
    duration_ms: int
    sample_rate: int
    channels: int
    loudness_before_lufs: float
    loudness_after_lufs: float
    true_peak_after_dbtp: float
    gain_db: float
    waveform_peaks: list[float]


class AudioFiles:
    """Rows of one table, through one autocommit connection."""

    def __init__(self, conn: psycopg.Connection[Any], table: tuple[str, ...]):
        self.conn = conn
        self.table = sql.Identifier(*table)
        self._returning = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c == "id" else sql.Identifier(c) for c in COLUMNS
        )

    def get(self, file_id: str) -> AudioFile | None:
        query = sql.SQL("SELECT {cols} FROM {table} WHERE id = %(id)s").format(cols=self._returning, table=self.table)
        return self._one(query, {"id": file_id})

    def claim(
        self,
        file_id: str,
        *,
        stale_after_s: int,
        replacing_sha256: str | None = None,
        own_token: int | None = None,
    ) -> AudioFile | None:
        """Move the row to ``processing`` if nobody is working on it; None if somebody is.

        A ``ready`` row is claimed only with ``replacing_sha256``, its recorded source
        hash, once the caller has seen that the source changed since. A ``processing``
        row is taken over once stale, or at once when it still carries ``own_token``:
        the claim an earlier, finished attempt of the caller's own job made.
        """
        query = sql.SQL(
            """
            UPDATE {table}
               SET status = 'processing', attempts = attempts + 1, error = NULL, updated_at = now()
             WHERE id = %(id)s
               AND (status = ANY(%(claimable)s)
                    OR (status = 'processing' AND updated_at < now() - make_interval(secs => %(stale)s))
                    OR (status = 'processing' AND attempts = %(own)s::integer)
                    OR (status = 'ready' AND %(replacing)s::text IS NOT NULL
                        AND source_sha256 IS NOT DISTINCT FROM %(replacing)s::text))
            RETURNING {cols}
            """
        ).format(table=self.table, cols=self._returning)
        params = {
            "id": file_id,
            "claimable": list(CLAIMABLE),
            "stale": stale_after_s,
            "replacing": replacing_sha256,
            "own": own_token,
        }
        return self._one(query, params)

    def heartbeat(self, file_id: str, token: int) -> bool:
        """Tell other workers this one is alive; False if the claim was lost."""
        query = sql.SQL("UPDATE {table} SET updated_at = now() WHERE {owned}").format(
            table=self.table, owned=self._owned()
        )
        return self._execute(query, {"id": file_id, "token": token})

    def finish_ready(self, file_id: str, token: int, result: Result) -> bool:
        values = {f.name: getattr(result, f.name) for f in fields(result)}
        assignments = sql.SQL(", ").join(sql.SQL("{} = %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in values)
        query = sql.SQL(
            "UPDATE {table} SET status = 'ready', error = NULL, {set}, updated_at = now() WHERE {owned}"
        ).format(table=self.table, set=assignments, owned=self._owned())
        return self._execute(query, {**values, "id": file_id, "token": token})

    def finish(self, file_id: str, token: int, status: str, error: str, **extra: Any) -> bool:
        """Record a ``failed`` or ``rejected`` outcome with its reason (and any facts learnt)."""
        if status not in ("failed", "rejected"):
            raise ValueError(f"finish() records failed or rejected, not {status!r}")
        assignments = [sql.SQL("{} = %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in extra]
        query = sql.SQL(
            "UPDATE {table} SET status = %(status)s, error = %(error)s{more}, updated_at = now() WHERE {owned}"
        ).format(
            table=self.table,
            more=sql.SQL("").join(sql.SQL(", ") + a for a in assignments),
            owned=self._owned(),
        )
        params = {**extra, "status": status, "error": error[:MAX_ERROR_CHARS], "id": file_id, "token": token}
        return self._execute(query, params)

    def _owned(self) -> sql.SQL:
        return sql.SQL("id = %(id)s AND status = 'processing' AND attempts = %(token)s")

    def _one(self, query: sql.Composed, params: dict[str, Any]) -> AudioFile | None:
        with self._errors(params), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            row = cur.fetchone()
        return AudioFile(**row) if row else None

    def _execute(self, query: sql.Composed, params: dict[str, Any]) -> bool:
        with self._errors(params), self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.rowcount == 1

    @contextlib.contextmanager
    def _errors(self, params: dict[str, Any]) -> Iterator[None]:
        """Database errors in Railyard's two families, each with what to do about it."""
        name = self.table.as_string(self.conn)
        try:
            yield
        except psycopg.errors.DataError as exc:
            raise PermanentError(f"audio file id {params['id']!r} is not a valid id for table {name}") from exc
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise PermanentError(
                f"table {name} is missing or lacks audio columns ({first_line(exc)}); "
                "apply Railyard's built-in migrations or point AUDIO_TABLE at the right table"
            ) from exc
        except psycopg.OperationalError as exc:
            raise RetryableError(f"database error on table {name}: {first_line(exc)}") from exc
