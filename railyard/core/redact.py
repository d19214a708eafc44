"""The one redaction layer: every configured secret, in every spelling, replaced by ``***``.

Every output path goes through it: log lines (railyard.core.logs), CLI errors and output
(railyard.cli), health lines, webhook payloads and pings (railyard.core.alerts), and the
exception text rq stores in Redis for a failed job (worker.rq_worker).

It knows every secret the environment configures (:func:`environment_secrets`): the
password of every connection URL (``DATABASE_URL``, ``RESTORE_TARGET_URL``,
``VERIFY_DATABASE_URL``, each ``BACKUP_DATABASE_URLS`` entry, ``REDIS_URL`` and any other
``*_URL`` variable), ``PGPASSWORD``, the AWS secret key and session token, the copy
destination's secret key (``BACKUP_COPY_AWS_SECRET_ACCESS_KEY``), the user and
password embedded in S3 endpoint URLs (the copy's too), the age identity (from the variable or its file),
and the tokens in alert webhook, ping and Apprise (``ALERT_URLS``) URLs. Each is matched as written and
percent-decoded, percent-encoded, and escaped as JSON or ``repr`` would print it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from railyard.core.conninfo import password_forms, url_userinfo

REDACTED = "***"
# Shorter values are ordinary text ("a", "pw"): replacing them everywhere would garble every line.
MIN_SECRET_CHARS = 4
# Path segments and query values at least this long in a webhook or ping URL are its token.
MIN_TOKEN_CHARS = 16
MAX_IDENTITY_FILE_BYTES = 64 * 1024

SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "BACKUP_COPY_AWS_SECRET_ACCESS_KEY",
    "BACKUP_ENCRYPTION_IDENTITY",
    "PGPASSWORD",
)
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "BACKUP_COPY_AWS_ENDPOINT_URL_S3")
TOKEN_URL_VARIABLES = ("ALERT_WEBHOOK_URL", "HEALTHCHECK_PING_URL")
TOKEN_URL_LIST_VARIABLES = ("ALERT_URLS",)  # Apprise URLs: tokens in the host, the path or the userinfo


def spellings(secret: str) -> set[str]:
    """``secret`` as written, decoded, percent-encoded, and escaped for JSON and ``repr``."""
    forms = {secret, unquote(secret), quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
        forms.add(repr(form)[1:-1])
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces every spelling of every secret it was given; longest first, in one pass."""

    def __init__(self, secrets: Iterable[str]):
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                forms |= spellings(secret)
        self.forms = tuple(sorted(forms, key=len, reverse=True))
        self._pattern = re.compile("|".join(re.escape(f) for f in self.forms)) if self.forms else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """``value`` with secrets replaced in every string, in nested dicts, lists and tuples too."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.value(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def __bool__(self) -> bool:
        return self._pattern is not None


def environment_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every secret the environment configures, whether or not the settings around it are valid."""
    env = os.environ if environ is None else environ
    found: list[str] = []
    for name, value in env.items():
        if not value:
            continue
        if name in SECRET_VARIABLES:
            found.append(value.strip())
            found.append(value)
        elif name in TOKEN_URL_LIST_VARIABLES:
            for entry in value.split():
                found.extend(url_tokens(entry, host=True))
        elif name.endswith("_URL") or name.endswith("_URLS"):
            for entry in value.replace(",", " ").split() if name.endswith("_URLS") else [value]:
                found.extend(password_forms(entry.partition("=")[2] if name.endswith("_URLS") else entry))
    for name in ENDPOINT_VARIABLES:
        userinfo = url_userinfo(env.get(name, ""))
        if userinfo:
            found.extend([userinfo, *userinfo.split(":", 1)])
    for name in TOKEN_URL_VARIABLES:
        found.extend(url_tokens(env.get(name, "")))
    found.extend(_identity_file_secrets(env.get("BACKUP_ENCRYPTION_IDENTITY_FILE", "")))
    identity = env.get("BACKUP_ENCRYPTION_IDENTITY", "")
    found.extend(line.strip() for line in identity.splitlines() if line.strip().startswith("AGE-SECRET-KEY-"))
    return tuple(dict.fromkeys(s for s in found if s))


def url_tokens(url: str, *, host: bool = False) -> list[str]:
    """The secret parts of a webhook or ping URL: its userinfo, path, query and long segments
    (with ``host``, a long host part too: Apprise puts bot tokens there)."""
    url = url.strip()
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    tokens = [url]
    if host and len(parts.netloc) >= MIN_TOKEN_CHARS:
        tokens.append(parts.netloc)
    userinfo = url_userinfo(url)
    if userinfo:
        tokens += [userinfo, *userinfo.split(":", 1)]
    if len(parts.path) > 1:
        tokens.append(parts.path.strip("/"))
    if parts.query:
        tokens.append(parts.query)
    pieces = [*parts.path.split("/"), *(p.partition("=")[2] for p in parts.query.split("&"))]
    tokens += [p for p in pieces if len(p) >= MIN_TOKEN_CHARS]
    return tokens


def _identity_file_secrets(path: str) -> list[str]:
    if not path.strip():
        return []
    try:
        with Path(path.strip()).open("rb") as handle:
            text = handle.read(MAX_IDENTITY_FILE_BYTES).decode(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=8)
def _cached(items: tuple[tuple[str, str], ...], extra: tuple[str, ...]) -> Redactor:
    return Redactor((*environment_secrets(dict(items)), *extra))


def redactor(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Redactor:
    """The redactor for ``environ`` (default: this process's environment) plus ``extra`` secrets."""
    env = os.environ if environ is None else environ
    return _cached(tuple(sorted(env.items())), tuple(extra))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every configured secret replaced by ``***``."""
    return redactor(environ)(text)
