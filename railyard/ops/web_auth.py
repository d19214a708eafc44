"""Who may use ``railyard web``: HTTP Basic with RAILYARD_WEB_PASSWORD, and CSRF tokens for its forms.

Without a password the dashboard serves only on a loopback address; there is no default password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets

from railyard.core.errors import ConfigError

PASSWORD_VARIABLE = "RAILYARD_WEB_PASSWORD"  # noqa: S105 (a variable name, not a password)
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_password_off_loopback(host: str, password: str | None) -> None:
    """Refuse to serve beyond this machine without a password."""
    if not password and not is_loopback(host):
        raise ConfigError(
            [
                f"railyard web on {host} needs {PASSWORD_VARIABLE}: set it to a long random password "
                "(HTTP Basic, any user name), or bind to 127.0.0.1 with --host"
            ]
        )


def basic_auth_ok(header: str | None, password: str) -> bool:
    """True when an ``Authorization: Basic`` header carries ``password`` (any user name)."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, sep, given = decoded.partition(":")
    return bool(sep) and hmac.compare_digest(given.encode(), password.encode())


class CsrfTokens:
    """One token per process, signed with a random key: forms carry it, POSTs must return it."""

    def __init__(self, key: bytes | None = None):
        self._key = key or secrets.token_bytes(32)
        self.token = hmac.new(self._key, b"railyard-web-csrf", hashlib.sha256).hexdigest()

    def valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given), self.token)
