"""Where alerts and dead-man's-switch pings go, and when a backup counts as stale."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from railyard.durations import DurationError, parse_duration
from railyard.errors import ConfigError

DEFAULT_STALE_AFTER = timedelta(hours=26)


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = field(default=None, repr=False)  # Slack/Discord webhook URLs embed a token
    ping_url: str | None = field(default=None, repr=False)
    stale_after: timedelta = DEFAULT_STALE_AFTER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertConfig:
        """ALERT_WEBHOOK_URL, HEALTHCHECK_PING_URL, BACKUP_STALE_AFTER; every problem reported at once."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        urls: dict[str, str | None] = {}
        for name in ("ALERT_WEBHOOK_URL", "HEALTHCHECK_PING_URL"):
            value = env.get(name, "").strip() or None
            if value is not None:
                try:
                    parts = urlsplit(value)
                    scheme, host = parts.scheme, parts.hostname
                except ValueError:  # e.g. an unclosed IPv6 bracket
                    scheme, host = "", None
                if scheme not in ("http", "https") or not host:
                    problems.append(
                        f"{name} is not an http(s) URL (scheme {scheme!r}); "
                        f"e.g. https://hooks.slack.com/services/... or https://hc-ping.com/<uuid>"
                    )
                    value = None
            urls[name] = value
        stale_after = DEFAULT_STALE_AFTER
        raw = env.get("BACKUP_STALE_AFTER", "").strip()
        if raw:
            try:
                stale_after = parse_duration(raw)
            except DurationError as exc:
                problems.append(f"BACKUP_STALE_AFTER: {exc}")
        if problems:
            raise ConfigError(problems)
        ping = urls["HEALTHCHECK_PING_URL"]
        return cls(
            webhook_url=urls["ALERT_WEBHOOK_URL"],
            ping_url=ping.rstrip("/") if ping else None,
            stale_after=stale_after,
        )
