"""Settings: one frozen dataclass built from the environment once, validated at start-up.

Railway-native variable names come first (``REDIS_URL``, ``DATABASE_URL``,
``RAILWAY_ENVIRONMENT_NAME``). S3 credentials and endpoints are read by boto3 itself from
its standard variables; Railyard only validates them and keeps them out of logs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal
from urllib.parse import urlsplit

from railyard.core.conninfo import conninfo_problems, password_forms, raw_url_password, url_userinfo
from railyard.core.envparse import whole_number
from railyard.core.errors import ConfigError
from railyard.core.redact import REDACTED, Redactor, environment_secrets
from railyard.core.serializer import DEFAULT_SERIALIZER, SERIALIZER_VARIABLE, SerializerName, parse_serializer

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@localhost:5432/postgres"
DEFAULT_BACKUP_STORAGE_URL = "./backups"
DEFAULT_QUEUES = ("backup", "retention", "migration", "audio")
DEFAULT_REDIS_RECONNECT_TIMEOUT_S = 60  # at most WORKER_HEARTBEAT_GRACE_S: a waiting job is not declared abandoned
MAX_RECONNECT_S = 3600

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ADDRESSING_STYLES = ("auto", "path", "virtual")
PRODUCTION = "production"


def redact_url(url: str, *, userinfo: bool = False) -> str:
    """Return ``url`` with any password replaced by ``***`` (with ``userinfo``, the user too).

    Works on any text, however malformed (an out-of-range port, an unclosed bracket).
    """
    found = url_userinfo(url)
    if found is None:
        return url
    scheme_end = url.index("://") + 3
    start = url.index(found, scheme_end)
    if userinfo:
        shown = REDACTED
    elif ":" in found:
        shown = f"{found.split(':', 1)[0]}:{REDACTED}"
    else:
        return url
    return url[:start] + shown + url[start + len(found) :]


def url_password(url: str) -> str | None:
    """The password embedded in ``url``, if any, percent-decoded."""
    forms = raw_url_password(url)
    return forms[-1] if forms else None


def strip_password(url: str) -> str:
    """Return ``url`` without its password."""
    found = url_userinfo(url)
    if found is None or ":" not in found:
        return url
    start = url.index(found, url.index("://") + 3)
    return url[:start] + found.split(":", 1)[0] + url[start + len(found) :]


def is_production(environment: str) -> bool:
    """``ENVIRONMENT`` names production, in any case (``Production``, ``PRODUCTION``)."""
    return environment.strip().casefold() == PRODUCTION


@dataclass(frozen=True)
class Settings:
    """Everything Railyard reads from the environment. Build with :meth:`from_env`."""

    environment: str = "development"
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    backup_storage_url: str = DEFAULT_BACKUP_STORAGE_URL
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    queues: tuple[str, ...] = DEFAULT_QUEUES
    redis_reconnect_timeout_s: int = DEFAULT_REDIS_RECONNECT_TIMEOUT_S
    serializer: SerializerName = DEFAULT_SERIALIZER
    extra_secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise one ConfigError listing all problems."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        environment = get("ENVIRONMENT", get("RAILWAY_ENVIRONMENT_NAME", "development"))

        redis_url = get("REDIS_URL", DEFAULT_REDIS_URL)
        if _scheme(redis_url) not in ("redis", "rediss", "unix"):
            problems.append(
                f"REDIS_URL={redact_url(redis_url)!r} is not a Redis URL; "
                "use redis://[:password@]host:6379/0 (rediss:// for TLS)"
            )

        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            if is_production(environment):
                problems.append(
                    "DATABASE_URL is not set but ENVIRONMENT is production; set it to the "
                    "application database, e.g. ${{Postgres.DATABASE_URL}} on Railway"
                )
            database_url = DEFAULT_DATABASE_URL
        else:
            problems.extend(conninfo_problems("DATABASE_URL", database_url))

        storage_url = get("BACKUP_STORAGE_URL", DEFAULT_BACKUP_STORAGE_URL)
        problems.extend(storage_url_problems("BACKUP_STORAGE_URL", storage_url))

        style = get("S3_ADDRESSING_STYLE", "auto").lower()
        if style not in ADDRESSING_STYLES:
            problems.append(f"S3_ADDRESSING_STYLE={style!r} is not one of {', '.join(ADDRESSING_STYLES)}")
            style = "auto"

        for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            endpoint = env.get(name, "").strip()
            if endpoint and _scheme(endpoint) not in ("http", "https"):
                problems.append(
                    f"{name}={redact_url(endpoint, userinfo=True)!r} is not an http(s) URL; e.g. https://s3.example.com"
                )

        log_level = get("LOG_LEVEL", "INFO").upper()
        if log_level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL={log_level!r} is not one of {', '.join(LOG_LEVELS)}")
            log_level = "INFO"

        default_format = "console" if sys.stdout.isatty() else "json"
        log_format = get("LOG_FORMAT", default_format).lower()
        if log_format not in ("json", "console"):
            problems.append(f"LOG_FORMAT={log_format!r} is not json or console")
            log_format = "json"

        queues = tuple(q.strip() for q in get("WORKER_QUEUES", ",".join(DEFAULT_QUEUES)).split(",") if q.strip())
        unknown = [q for q in queues if q not in DEFAULT_QUEUES]
        if unknown:
            problems.append(
                f"WORKER_QUEUES names unknown queues {unknown}; Railyard's queues are {', '.join(DEFAULT_QUEUES)}"
            )

        reconnect_s = whole_number(
            env, "REDIS_RECONNECT_TIMEOUT_S", DEFAULT_REDIS_RECONNECT_TIMEOUT_S, 0, MAX_RECONNECT_S, problems
        )
        serializer = parse_serializer(env.get(SERIALIZER_VARIABLE, ""), problems)

        if problems:
            raise ConfigError(problems)

        secrets = environment_secrets(env)
        return cls(
            environment=environment,
            redis_url=redis_url,
            database_url=database_url,
            backup_storage_url=storage_url,
            s3_addressing_style=style,  # type: ignore[arg-type]
            log_level=log_level,
            log_format=log_format,  # type: ignore[arg-type]
            queues=queues,
            redis_reconnect_timeout_s=reconnect_s,
            serializer=serializer,
            extra_secrets=secrets,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value these settings know of, for scrubbing output."""
        found = [*raw_url_password(self.redis_url), *password_forms(self.database_url), *self.extra_secrets]
        return tuple(dict.fromkeys(s for s in found if s))

    @property
    def is_production(self) -> bool:
        """ENVIRONMENT is production, whatever its case."""
        return is_production(self.environment)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("redis_url", "database_url"):
                value = redact_url(value)
            elif f.name == "extra_secrets":
                value = f"<{len(value)} hidden>"
            shown.append(f"{f.name}={value!r}")
        return Redactor(self.secrets)(f"Settings({', '.join(shown)})")  # a key=value password has no URL to redact

    __str__ = __repr__


def _scheme(url: str) -> str:
    """The URL's scheme, or "" when it is no URL at all (urlsplit raises on an unclosed ``[``)."""
    try:
        return urlsplit(url).scheme
    except ValueError:
        return ""


def storage_url_problems(name: str, url: str) -> list[str]:
    """What is wrong with storage URL setting ``name`` (s3://bucket/prefix, file:// or a path), if anything."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [f"{name} is not a valid URL or path; use s3://bucket/prefix or a directory path"]
    if parts.scheme == "s3":
        if not parts.netloc:
            return [f"{name}={url!r} names no bucket; use s3://bucket/optional/prefix"]
        if parts.password or parts.username:
            return [f"{name} must not embed credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"]
        return []
    if parts.scheme in ("", "file"):
        return []
    return [f"{name}={redact_url(url)!r} has unsupported scheme {parts.scheme!r}; use s3://bucket/prefix or a path"]
