"""The production restore guard: databases compared by identity, not by how their URLs are spelled.

A database's identity is ``(system_identifier, current_database())``: the cluster's
identifier from ``pg_control_system()`` (the same through a private host, a public proxy,
an IP address, a multi-host URL or ``PGDATABASE``) and the database's name on that server.
When ENVIRONMENT is production (in any case), a restore target whose identity equals that
of a production source is refused unless ``--force-production`` is given. The production
sources are DATABASE_URL, every BACKUP_DATABASE_URLS entry and, with
BACKUP_ALL_DATABASES=true, every database on DATABASE_URL's server. An identity that cannot
be read is refused too: the guard never guesses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
import structlog

from railyard.core.conninfo import password_forms
from railyard.core.databases import named_database_urls
from railyard.core.errors import PermanentError, RailyardError
from railyard.core.pgtools import PgTarget
from railyard.core.redact import redactor
from railyard.core.settings import Settings

log = structlog.get_logger()

IDENTITY_SQL = "SELECT system_identifier::text, current_database() FROM pg_control_system()"
FORCE_HINT = "pass --force-production if that is really what you want"


@dataclass(frozen=True)
class DatabaseIdentity:
    system_identifier: str
    database: str


@dataclass(frozen=True)
class ProductionSource:
    label: str  # the setting it comes from, for messages
    target: PgTarget
    whole_server: bool = False  # every database on its server is a source (BACKUP_ALL_DATABASES)


def read_identity(target: PgTarget) -> DatabaseIdentity:
    """Connect to ``target`` and read its identity; raises RailyardError or psycopg.Error when it cannot."""
    with target.connect(autocommit=True) as conn:
        row = conn.execute(IDENTITY_SQL).fetchone()
    if not row:
        raise PermanentError(f"pg_control_system() returned nothing on {target.host}")
    return DatabaseIdentity(str(row[0]), str(row[1]))


def production_sources(settings: Settings, environ: Mapping[str, str] | None = None) -> list[ProductionSource]:
    env = os.environ if environ is None else environ
    whole_server = env.get("BACKUP_ALL_DATABASES", "").strip().lower() in ("1", "true", "yes", "on")
    sources = [ProductionSource("DATABASE_URL", PgTarget(settings.database_url), whole_server)]
    sources += [
        ProductionSource(f"BACKUP_DATABASE_URLS entry {name!r}", PgTarget(url))
        for name, url in sorted(named_database_urls(env).items())
    ]
    return sources


def check_restore_target(
    settings: Settings, target: PgTarget, *, force_production: bool, environ: Mapping[str, str] | None = None
) -> None:
    """Refuse a restore into a production source when ENVIRONMENT is production, unless forced."""
    if not settings.is_production:
        return
    if force_production:
        log.warning("production_guard_overridden", target=target.safe_url)
        return
    target_identity = _identity_or_refuse(target, f"the restore target {target.safe_url}")
    for source in production_sources(settings, environ):
        identity = _identity_or_refuse(source.target, f"{source.label} ({source.target.safe_url})")
        same_server = identity.system_identifier == target_identity.system_identifier
        if same_server and (source.whole_server or identity.database == target_identity.database):
            what = (
                "every database on that server is backed up (BACKUP_ALL_DATABASES=true)"
                if identity.database != target_identity.database
                else f"it is the database {source.label} names"
            )
            raise PermanentError(
                f"refusing to restore into the production database {target_identity.database!r} "
                f"(server {identity.system_identifier}): {what}; {FORCE_HINT}"
            )


def _identity_or_refuse(target: PgTarget, described: str) -> DatabaseIdentity:
    try:
        return read_identity(target)
    except (RailyardError, psycopg.Error) as exc:
        reason = redactor(extra=password_forms(target.url))(" ".join(str(exc).split()) or type(exc).__name__)
        raise PermanentError(
            f"ENVIRONMENT is production and the identity of {described} could not be read ({reason}), so "
            f"Railyard cannot tell whether the target is a production database; fix the connection or {FORCE_HINT}"
        ) from exc
