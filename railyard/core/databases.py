"""Which databases to back up: DATABASE_URL, named ones (BACKUP_DATABASE_URLS), or a whole server."""

from __future__ import annotations

import os
from collections.abc import Mapping

from railyard.core.conninfo import conninfo_problems
from railyard.core.errors import ConfigError, NotFoundError
from railyard.core.pgtools import PgTarget
from railyard.core.settings import Settings, redact_url

CONNECTABLE_DATABASES_SQL = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
    "AND has_database_privilege(datname, 'CONNECT') ORDER BY datname"
)


def named_database_urls(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``BACKUP_DATABASE_URLS``: ``name=postgresql://...`` entries separated by spaces, commas or lines."""
    env = os.environ if environ is None else environ
    raw = env.get("BACKUP_DATABASE_URLS", "")
    urls: dict[str, str] = {}
    problems = []
    for entry in raw.replace(",", " ").split():
        name, sep, url = entry.partition("=")
        if not sep or not name or "://" in name:
            problems.append(f"BACKUP_DATABASE_URLS entry {redact_url(entry)!r} is not name=postgresql://user@host/db")
        elif conninfo_problems(f"BACKUP_DATABASE_URLS entry {name!r}", url):
            problems.extend(conninfo_problems(f"BACKUP_DATABASE_URLS entry {name!r}", url))
        elif name in urls:
            problems.append(f"BACKUP_DATABASE_URLS names {name!r} twice")
        else:
            urls[name] = url
    if problems:
        raise ConfigError(problems)
    return urls


def resolve_target(settings: Settings, database: str | None, environ: Mapping[str, str] | None = None) -> PgTarget:
    """A named database from BACKUP_DATABASE_URLS, else a database on DATABASE_URL's server by name."""
    named = named_database_urls(environ)
    if database and database in named:
        return PgTarget(named[database])
    target = PgTarget(settings.database_url)
    return target.with_dbname(database) if database and database != target.dbname else target


def configured_databases(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The databases the schedule backs up: every BACKUP_DATABASE_URLS name, else DATABASE_URL's database."""
    named = named_database_urls(environ)
    return sorted(named) if named else [PgTarget(settings.database_url).dbname]


def list_databases(server: PgTarget) -> list[str]:
    """Every non-template database on ``server`` that its user may connect to."""
    with server.connect(autocommit=True) as conn:
        names = [str(row[0]) for row in conn.execute(CONNECTABLE_DATABASES_SQL).fetchall()]
    if not names:
        raise NotFoundError(f"no database on {server.host} accepts connections from this user")
    return names
