"""Reachability checks for Redis, PostgreSQL and storage, each one line, no secrets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import redis

from jobs.storage import open_store
from railyard.errors import RailyardError
from railyard.settings import Settings, redact_url

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


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
    with psycopg.connect(settings.database_url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    return f"{redact_url(settings.database_url)} (PostgreSQL {version[0] if version else '?'})"


def check_storage(settings: Settings) -> str:
    return open_store(settings.backup_storage_url, addressing_style=settings.s3_addressing_style).check()


CHECKS: tuple[tuple[str, Callable[[Settings], str]], ...] = (
    ("redis", check_redis),
    ("postgres", check_postgres),
    ("storage", check_storage),
)


def run_checks(settings: Settings) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check(settings)))
        except (RailyardError, redis.RedisError, psycopg.Error, OSError) as exc:
            results.append(CheckResult(name, False, _first_line(exc)))
    return results


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, RailyardError) else text
