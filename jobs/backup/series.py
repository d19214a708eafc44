"""Series: which history a backup belongs to, named by its source, never by the database's name alone.

On Railway every PostgreSQL database is called ``railway``, so the database name cannot
tell two servers apart. A series is named by where the backup came from:

- ``DATABASE_URL``: its database name, as before series existed (existing keys stay valid);
- a ``BACKUP_DATABASE_URLS`` entry: the entry's name (``app=postgresql://…`` -> ``app``);
- another database on ``DATABASE_URL``'s server (``--database other``): that name, as before;
- ``--all-databases`` on a source: the source's own database keeps the source's series, and
  every other database ``D`` is ``{source series}.{D}``.

Two sources never share a series' keys, listing, retention or ``latest``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg
import structlog

from railyard.core.databases import named_database_urls
from railyard.core.errors import ConfigError, RailyardError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings

log = structlog.get_logger()

# ``series_lock(series)`` enters holding the lock a running backup of ``series`` holds, yielding
# True, or yields False when that lock is held (the backup is running), or None when it cannot tell.
SeriesLock = Callable[[str], AbstractContextManager[bool | None]]


@contextlib.contextmanager
def no_series_lock(series: str) -> Iterator[bool | None]:
    yield None


# Advisory lock key (two int4s) a backup holds on its source database for its whole run.
BACKUP_LOCK_KEY = (0x5241494C, 0x42414B)  # "RAIL", "BAK"
SOURCE_DATABASE_URL = "DATABASE_URL"
SOURCE_URL_ARGUMENT = "--database-url"
ALL_DATABASES_SEPARATOR = "."


@dataclass(frozen=True)
class Source:
    """A database to back up: where it is, which configured source it came from, and its series."""

    target: PgTarget
    source: str  # "DATABASE_URL", a BACKUP_DATABASE_URLS name, or "--database-url"
    series: str


def series_problems(environ: Mapping[str, str]) -> None:
    """Refuse a BACKUP_DATABASE_URLS name that is DATABASE_URL's series but another database.

    Both would write one series: ``latest``, listing and retention would mix two servers.
    """
    named = named_database_urls(environ)
    main = PgTarget(Settings.from_env(environ).database_url)
    other = PgTarget(named[main.dbname]) if main.dbname in named else None
    if other is not None and _address(other) != _address(main):
        raise ConfigError(
            [
                f"BACKUP_DATABASE_URLS names {main.dbname!r}, which is DATABASE_URL's series, but points at "
                f"{other.safe_url}, not {main.safe_url}: both would write one series; give the entry another name"
            ]
        )


def _address(target: PgTarget) -> tuple[str, str]:
    return target.host, target.dbname


def default_series(settings: Settings) -> str:
    """``latest`` without ``--database``: the series of DATABASE_URL's database."""
    return PgTarget(settings.database_url).dbname


def resolve_source(settings: Settings, database: str | None, environ: Mapping[str, str] | None = None) -> Source:
    """``database`` (a BACKUP_DATABASE_URLS name, or a database on DATABASE_URL's server) as a source."""
    named = named_database_urls(environ)
    if database and database in named:
        return Source(PgTarget(named[database]), database, database)
    main = PgTarget(settings.database_url)
    if database and database != main.dbname:
        return Source(main.with_dbname(database), SOURCE_DATABASE_URL, database)
    return Source(main, SOURCE_DATABASE_URL, main.dbname)


def url_source(url: str) -> Source:
    """A database given by URL on the command line: its series is its database name."""
    target = PgTarget(url)
    return Source(target, SOURCE_URL_ARGUMENT, target.dbname)


def server_database(source: Source, dbname: str) -> Source:
    """One database of ``source``'s server in an ``--all-databases`` run."""
    if dbname == source.target.dbname:
        return source
    return Source(source.target.with_dbname(dbname), source.source, f"{source.series}{ALL_DATABASES_SEPARATOR}{dbname}")


def source_of_series(settings: Settings, series: str, environ: Mapping[str, str] | None = None) -> PgTarget | None:
    """The database a series' backups are taken from, as far as the configuration says; None if unknown."""
    named = named_database_urls(environ)
    main = PgTarget(settings.database_url)
    if series in named:
        return PgTarget(named[series])
    if series == main.dbname:
        return main
    head, sep, dbname = series.partition(ALL_DATABASES_SEPARATOR)
    if sep and dbname:
        if head in named:
            return PgTarget(named[head]).with_dbname(dbname)
        if head == main.dbname:
            return main.with_dbname(dbname)
    with contextlib.suppress(RailyardError):
        return main.with_dbname(series)
    return None


def lock_probe(settings: Settings, environ: Mapping[str, str] | None = None) -> SeriesLock:
    """A ``series_lock`` for prune: holds a series' backup lock, or says that a backup holds it."""

    @contextlib.contextmanager
    def series_lock(series: str) -> Iterator[bool | None]:
        target = source_of_series(settings, series, environ)
        if target is None:
            yield None
            return
        try:
            conn = target.connect(autocommit=True)
        except RailyardError as exc:
            log.info("series_lock_unknown", series=series, reason=str(exc))
            yield None
            return
        with conn:
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", BACKUP_LOCK_KEY).fetchone()
            except psycopg.Error as exc:
                log.info("series_lock_unknown", series=series, reason=" ".join(str(exc).split()))
                yield None
                return
            got = bool(row and row[0])
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", BACKUP_LOCK_KEY)

    return series_lock
