"""Best-effort HTTP delivery for alerts and pings: short timeout, a few retries, never raises.

A monitoring endpoint that is down must not fail the job it reports on, and the URL
itself (Slack and Discord webhook URLs embed a token) is never logged, only its host.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import structlog

from railyard import __version__

log = structlog.get_logger()

TIMEOUT_S = 5.0
ATTEMPTS = 3
BACKOFF_S = 0.5
USER_AGENT = f"railyard/{__version__}"


def post(
    url: str,
    body: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout_s: float = TIMEOUT_S,
    attempts: int = ATTEMPTS,
) -> bool:
    """POST ``body`` (or nothing) to ``url``; True once a 2xx answer arrives."""
    host = urlsplit(url).hostname or "?"
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = content_type
    error = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body or b"", headers=headers, method="POST")  # noqa: S310 (http(s) checked by AlertConfig)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (same)
                response.read(1024)
                return True
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # the request itself is wrong: repeating it cannot help
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            error = type(reason).__name__ if not isinstance(reason, str) else reason
        if attempt < attempts:
            time.sleep(BACKOFF_S * attempt)
    log.warning("delivery_failed", host=host, error=error, attempts=attempts)
    return False
