"""Where alerts and dead-man's-switch pings go, and when a backup counts as stale."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from railyard.core.durations import DurationError, parse_duration
from railyard.core.errors import ConfigError

DEFAULT_STALE_AFTER = timedelta(hours=26)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = field(default=None, repr=False)  # Slack/Discord webhook URLs embed a token
    ping_url: str | None = field(default=None, repr=False)
    stale_after: timedelta = DEFAULT_STALE_AFTER
    alert_urls: tuple[str, ...] = field(default=(), repr=False)  # Apprise URLs embed tokens and passwords
    notify_success: bool = False

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
        alert_urls = tuple(env.get("ALERT_URLS", "").split())
        problems += apprise_url_problems(alert_urls)
        raw = env.get("ALERT_ON_SUCCESS", "").strip().lower()
        notify_success = raw in TRUE_WORDS
        if raw and raw not in TRUE_WORDS + FALSE_WORDS:
            problems.append(f"ALERT_ON_SUCCESS={raw[:20]!r} is not true or false")
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
            alert_urls=alert_urls,
            notify_success=notify_success,
        )


def apprise_url_problems(urls: tuple[str, ...]) -> list[str]:
    """One problem per ALERT_URLS entry Apprise cannot send to, named by position and scheme only."""
    if not urls:
        return []  # Apprise (~30 ms of plugins) loads only when there are URLs to check
    import apprise

    problems = []
    for number, url in enumerate(urls, start=1):
        if apprise.Apprise.instantiate(url) is None:
            scheme = url.partition("://")[0][:20] if "://" in url else ""
            problems.append(
                f"ALERT_URLS entry {number} (scheme {scheme!r}) is not a URL Apprise can send to; write e.g. "
                "slack://T000/B000/XXX, tgram://bot-token/chat-id, ntfys://ntfy.sh/topic or mailtos://user:pass@host "
                "(https://github.com/caronc/apprise/wiki), separated by spaces"
            )
    return problems
