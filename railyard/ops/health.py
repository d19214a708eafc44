"""Reachability checks for Redis, PostgreSQL and storage, and the client tools each database needs.

One line each, passed through the redaction layer. The client-tool check asks every configured
database's server its version and names the pg_dump and pg_restore the version rule would
pick (railyard.core.pgtools): it is what says whether this deployment can back up and restore at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis

from railyard.core.conninfo import Conninfo
from railyard.core.databases import configured_databases, resolve_target
from railyard.core.errors import RailyardError, one_line
from railyard.core.pgtools import PgTool, find_tool, server_major
from railyard.core.redact import redactor
from railyard.core.settings import Settings, redact_url
from railyard.core.storage import open_backup_store

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)  # structured detail for --json

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, **self.facts}


def check_redis(settings: Settings) -> str:
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        info = client.info("server")
    finally:
        client.close()
    return f"{redact_url(settings.redis_url)} (Redis {info.get('redis_version', '?')})"


def check_postgres(settings: Settings) -> str:
    conninfo = Conninfo.parse(settings.database_url, "DATABASE_URL")
    with conninfo.connect(connect_timeout=CONNECT_TIMEOUT_S) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    return f"{conninfo.display()} (PostgreSQL {version[0] if version else '?'})"


def check_storage(settings: Settings) -> str:
    """Reachable and writable; with S3_OBJECT_LOCK, a bucket that has object lock enabled."""
    store, _ = open_backup_store(settings, locked=True)
    return store.check()


CHECKS: tuple[tuple[str, Callable[[Settings], str]], ...] = (
    ("redis", check_redis),
    ("postgres", check_postgres),
    ("storage", check_storage),
)


def check_client_tools(settings: Settings) -> list[CheckResult]:
    """One result per configured database: its server's major and the pg_dump/pg_restore that fit it."""
    try:
        names = configured_databases(settings)
    except RailyardError as exc:
        return [CheckResult("pg_tools", False, one_line(exc))]
    return [_client_tools_for(settings, name) for name in names]


def _client_tools_for(settings: Settings, name: str) -> CheckResult:
    facts: dict[str, Any] = {"database": name}
    try:
        target = resolve_target(settings, name)
        with target.connect(autocommit=True) as conn:
            major, version = server_major(conn)
        facts.update(server_version=version, server_major=major)
        tools = {tool: find_tool(tool, major, ssl_mode=target.ssl_mode) for tool in ("pg_dump", "pg_restore")}
    except (RailyardError, psycopg.Error, OSError) as exc:
        server = f"PostgreSQL {facts['server_version']}, " if "server_version" in facts else ""
        return CheckResult("pg_tools", False, f"{name}: {server}{one_line(exc)}", facts)
    facts.update({tool: _tool_json(found) for tool, found in tools.items()})
    listed = ", ".join(f"{tool} {found.version} ({found.path})" for tool, found in tools.items())
    return CheckResult("pg_tools", True, f"{name}: PostgreSQL {version}, {listed}", facts)


def _tool_json(tool: PgTool) -> dict[str, Any]:
    return {"path": tool.path, "version": tool.version, "major": tool.major}


def run_checks(settings: Settings) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check(settings)))
        except (RailyardError, redis.RedisError, psycopg.Error, OSError) as exc:
            results.append(CheckResult(name, False, one_line(exc)))
    redact = redactor(extra=settings.secrets)
    results += check_client_tools(settings)
    return [CheckResult(r.name, r.ok, redact(r.detail), redact.value(r.facts)) for r in results]
