"""Notifications through Apprise (ALERT_URLS): Slack, Discord, Telegram, email, ntfy, Teams, ...

Best effort like the webhook: never raises, never logs a URL (they embed tokens), only
their schemes. Apprise's own log lines are kept at WARNING and go through the secret
scrubber like every other line.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

log = structlog.get_logger()


def send(urls: Sequence[str], title: str, body: str) -> bool:
    """Notify every URL in ``urls``; True when all of them accepted it."""
    schemes = sorted({url.partition("://")[0] for url in urls})
    try:
        import apprise  # ~30 ms of plugins, loaded only when there is something to send

        sender = apprise.Apprise()
        for url in urls:
            sender.add(url)
        if bool(sender.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)):
            return True
        error = "not accepted"
    except Exception as exc:  # a plugin's bug must not fail the job it reports on
        error = type(exc).__name__
    log.warning("notification_failed", schemes=schemes, error=error)
    return False
