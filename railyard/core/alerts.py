"""Alerts (a JSON POST to ALERT_WEBHOOK_URL, and Apprise notifications to ALERT_URLS) and
healthchecks.io-style pings (HEALTHCHECK_PING_URL).

The payload carries ``text`` (Slack) and ``content`` (Discord) for people, plus the same
facts as structured fields for machines. Every string is scrubbed of every secret the
process knows before it leaves, and delivery never raises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from railyard.core import delivery, notify
from railyard.core.alert_config import AlertConfig
from railyard.core.errors import ConfigError, first_line
from railyard.core.redact import Redactor, environment_secrets

log = structlog.get_logger()

DISCORD_CONTENT_LIMIT = 2000
PingKind = Literal["start", "success", "fail"]


@dataclass(frozen=True)
class Alert:
    event: str  # job_failed, backup_stale, verification_failed
    summary: str  # one line for people
    environment: str
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self, secrets: Iterable[str] = ()) -> dict[str, Any]:
        text = f"[railyard {self.environment}] {self.summary}"
        body = {
            "text": text,
            "content": text[:DISCORD_CONTENT_LIMIT],
            "event": self.event,
            "environment": self.environment,
            "summary": self.summary,
            "details": self.details,
        }
        scrubbed: dict[str, Any] = scrub(body, tuple(s for s in secrets if s))
        return scrubbed


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every spelling of every secret replaced, in nested dicts and lists too."""
    return Redactor(secrets).value(value)


def process_secrets() -> tuple[str, ...]:
    """Every secret this process can see in its environment, whether or not settings load."""
    return environment_secrets(os.environ)


def _config() -> AlertConfig | None:
    try:
        return AlertConfig.from_env()
    except ConfigError as exc:
        log.error("alert_config_invalid", error=str(exc))
        return None


def send_alert(alert: Alert, config: AlertConfig | None = None) -> bool:
    """POST ``alert`` to ALERT_WEBHOOK_URL and notify every ALERT_URLS entry through Apprise, each if set;
    True when at least one of them took it."""
    config = config or _config()
    log.warning("alert", alert_event=alert.event, summary=scrub(alert.summary, process_secrets()))
    if config is None:
        return False
    payload = alert.payload(process_secrets())
    delivered = False
    if config.webhook_url:
        delivered = delivery.post(config.webhook_url, json.dumps(payload).encode())
    if config.alert_urls:
        body = payload["text"] + _details_text(payload["details"])
        delivered = notify.send(config.alert_urls, f"railyard {alert.environment}: {alert.event}", body) or delivered
    return delivered


def _details_text(details: dict[str, Any]) -> str:
    """The alert's details as ``name: value`` lines under its summary (already scrubbed)."""
    lines = [f"{k}: {v if isinstance(v, str | int | float) else json.dumps(v)}" for k, v in details.items()]
    return "\n\n" + "\n".join(lines) if lines else ""


def ping(kind: PingKind, config: AlertConfig | None = None, message: str = "") -> bool:
    """healthchecks.io convention: ``<url>/start``, ``<url>`` on success, ``<url>/fail``."""
    config = config or _config()
    if config is None or not config.ping_url:
        return False
    url = config.ping_url + ("" if kind == "success" else f"/{kind}")
    body = scrub(message, process_secrets()).encode()[:10_000] if message else None
    return delivery.post(url, body, content_type="text/plain; charset=utf-8")


@contextmanager
def pinged(config: AlertConfig | None = None, *, is_final: Any = None) -> Iterator[None]:
    """Ping start before the block, success after it, fail when it raises.

    ``is_final(exc)`` says whether a failure is the last attempt; a failure that will be
    retried sends no fail ping, so a retry that succeeds keeps the check green.
    """
    config = config or _config()
    ping("start", config)
    try:
        yield
    except BaseException as exc:
        if is_final is None or is_final(exc):
            ping("fail", config, message=first_line(exc))
        raise
    ping("success", config)
