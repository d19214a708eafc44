"""PostgreSQL connection strings, parsed once, by libpq's own parser.

A configured connection string may be a ``postgresql://`` (or ``postgres://``) URL with
percent-encoded parts, query parameters (``?dbname=``, ``?host=``, ``?sslmode=``) and
several hosts, or a libpq ``key=value`` string. libpq (through ``psycopg.conninfo``)
turns it into its parameters with the password decoded exactly once; everything that
connects or starts a client tool takes them from here:

- psycopg receives the parameters as keyword arguments (:meth:`Conninfo.connect_kwargs`);
- pg_dump, pg_restore and pg_dumpall receive a ``key=value`` string without the password
  in their arguments (:meth:`Conninfo.argv_conninfo`) and the decoded password in
  ``PGPASSWORD`` (:meth:`Conninfo.child_env`), where ``ps`` cannot show it.

Parse errors never quote the string: libpq's messages do, password included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from railyard.core.errors import PermanentError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 10
PORT_MAX = 65535
REDACTED = "***"
URL_SCHEMES = ("postgresql://", "postgres://")

# libpq quotes fragments of the string in its messages (they may hold the password); these fixed ones are safe.
_SAFE_QUOTED = ('"]"', '"="')
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_KV_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'?|[^\s']+)")


class ConninfoError(PermanentError):
    """A connection string that libpq cannot read, or whose values are out of range."""


@dataclass(frozen=True)
class Conninfo:
    """A parsed connection string: libpq's keywords mapped to their decoded values."""

    params: Mapping[str, str] = field(repr=False)

    @classmethod
    def parse(cls, text: str, name: str = "the connection string") -> Conninfo:
        """Parse ``text`` (a URL or ``key=value`` string); ``name`` says where it came from in errors."""
        problems = conninfo_problems(name, text)
        if problems:
            raise ConninfoError("; ".join(problems))
        return cls(_parse(text.strip()))

    @property
    def password(self) -> str | None:
        return self.params.get("password") or None

    @property
    def user(self) -> str | None:
        return self.params.get("user") or None

    def dbname(self, environ: Mapping[str, str] | None = None) -> str:
        """The database libpq would connect to: the string's, else PGDATABASE, else the user's name."""
        env = os.environ if environ is None else environ
        return (
            self.params.get("dbname")
            or env.get("PGDATABASE")
            or self.params.get("user")
            or env.get("PGUSER")
            or "postgres"
        )

    def host(self, environ: Mapping[str, str] | None = None) -> str:
        """``host:port`` for people (several comma-separated for a multi-host string); no secrets."""
        env = os.environ if environ is None else environ
        hosts = (self.params.get("host") or self.params.get("hostaddr") or env.get("PGHOST") or "localhost").split(",")
        ports = (self.params.get("port") or env.get("PGPORT") or "5432").split(",")
        shown = []
        for i, host in enumerate(hosts):
            port = ports[i] if i < len(ports) else ports[-1]
            host = host or "localhost"
            shown.append(f"[{host}]:{port or 5432}" if ":" in host else f"{host}:{port or 5432}")
        return ",".join(shown)

    def with_dbname(self, dbname: str) -> Conninfo:
        """The same server and credentials, another database."""
        if "\x00" in dbname:
            raise ConninfoError(f"database name {dbname!r} contains a NUL character, which no PostgreSQL name can")
        return Conninfo({**self.params, "dbname": dbname})

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``: every parameter, plus a connect timeout."""
        kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, **self.params}
        kwargs.update(overrides)
        return kwargs

    def connect(self, **overrides: Any) -> psycopg.Connection[Any]:
        """``psycopg.connect`` with these parameters (psycopg's errors; railyard.core.pgtools classifies them)."""
        import psycopg  # imported where used: `railyard --help` starts without it

        return psycopg.connect(**self.connect_kwargs(**overrides))

    def argv_conninfo(self) -> str:
        """A ``key=value`` string for a client tool's ``--dbname``: every parameter but the password."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo("", **{k: v for k, v in self.params.items() if k != "password"})

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a client tool: the decoded password, if any, goes in PGPASSWORD only.

        Without a password in the string, libpq's own PGPASSWORD / PGPASSFILE from the
        environment still apply.
        """
        env = dict(os.environ if base is None else base)
        if self.password:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGAPPNAME", "railyard")
        env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S))
        return env

    def display(self, environ: Mapping[str, str] | None = None) -> str:
        """A URL for people: user, host(s), port(s) and database, the password shown as ``***``."""
        userinfo = ""
        if self.user:
            userinfo = quote(self.user, safe="") + (f":{REDACTED}" if self.password else "") + "@"
        elif self.password:
            userinfo = f":{REDACTED}@"
        hosts = self.host(environ)
        query = ""
        if hosts.startswith("/") or "/" in (self.params.get("host") or ""):
            query, hosts = f"?host={quote(self.params.get('host') or '', safe='/,')}", ""
        return f"postgresql://{userinfo}{hosts}/{quote(self.dbname(environ), safe='')}{query}"


class ConninfoSyntaxError(ValueError):
    """libpq cannot read a connection string (psycopg's own error, carried without importing psycopg early)."""


def _parse(text: str) -> dict[str, str]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(text).items() if v is not None}
    except psycopg.Error as exc:
        raise ConninfoSyntaxError(str(exc)) from exc


def conninfo_problems(name: str, text: str) -> list[str]:
    """What is wrong with connection string ``name`` (empty when libpq reads it and its ports are valid).

    Never quotes the string, so a password in it cannot leak through the message.
    """
    stripped = text.strip()
    looks_like_url = "://" in stripped.split("=", 1)[0] or "=" not in stripped
    if looks_like_url and stripped and not stripped.startswith(URL_SCHEMES):
        scheme = stripped.split("://", 1)[0] if "://" in stripped else ""
        return [
            f"{name} is not a PostgreSQL URL"
            + (f" (scheme {scheme!r})" if scheme and len(scheme) < 20 and scheme.isalnum() else "")
            + "; use postgresql://user:password@host:5432/dbname or a libpq key=value string"
        ]
    try:
        params = _parse(stripped)
    except ConninfoSyntaxError as exc:
        return [f"{name} is not a valid PostgreSQL connection string ({_reason(str(exc))}); {_hint(str(exc))}"]
    problems = []
    for port in (params.get("port") or "").split(","):
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= PORT_MAX):
            problems.append(f"{name} has port {_shown(port)}, which is not a port number; use one from 1 to {PORT_MAX}")
    if "\x00" in stripped:
        problems.append(f"{name} contains a NUL character; remove it")
    return problems


def _reason(message: str) -> str:
    """libpq's message without the fragment of the string it quotes: from there to the last quote goes."""
    first = " ".join(message.split("\n", 1)[0].split())
    masked = first
    for token in _SAFE_QUOTED:
        masked = masked.replace(token, "\x00" * len(token))
    start, end = masked.find('"'), masked.rfind('"')
    if start >= 0:
        first = first[:start] + "(…)" + (first[end + 1 :] if end > start else "")
    return first.rstrip(": ") or "unreadable"


def _hint(message: str) -> str:
    if "percent-encoded" in message:
        return "write each reserved character of the user or password as %XX (% itself as %25, @ as %40)"
    if "IPv6" in message:
        return "close the IPv6 address with ] (postgresql://user@[::1]:5432/db)"
    if "invalid URI query parameter" in message:
        return "query parameters must be libpq keywords, such as ?sslmode=require"
    return "use postgresql://user:password@host:5432/dbname or host=... dbname=... user=..."


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 12 else repr(value[:12] + "…")


def password_forms(text: str) -> list[str]:
    """Every spelling of the password in connection string ``text`` (decoded and as written), if any.

    Works on strings libpq refuses too, so the redaction layer knows a password even when
    the string around it is malformed.
    """
    found: list[str] = []
    try:
        decoded = _parse(text.strip()).get("password")
    except ConninfoSyntaxError:
        decoded = None
    if decoded:
        found.append(decoded)
    found.extend(raw_url_password(text))
    match = _KV_PASSWORD.search(text)
    if match:
        value = match.group("value")
        found.append(value)
        if value.startswith("'"):
            inner = value[1:-1] if len(value) >= 2 and value.endswith("'") and value[-2] != "\\" else value[1:]
            found.append(re.sub(r"\\(.)", r"\1", inner))
    return [f for f in dict.fromkeys(found) if f]


def raw_url_password(url: str) -> list[str]:
    """The password part of any ``scheme://user:password@host`` URL, as written and percent-decoded."""
    userinfo = url_userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return []
    raw = userinfo.split(":", 1)[1]
    return [f for f in dict.fromkeys((raw, unquote(raw))) if f]


def url_userinfo(url: str) -> str | None:
    """The ``user:password`` part of a URL as written, or None when it has none."""
    text = url.strip()
    match = _USERINFO.match(text)
    if not match:
        return None
    # A password may hold a raw "@": the userinfo ends at the last "@" before the path.
    rest = text[len(match.group("scheme")) :]
    end = len(rest)
    for sep in "/?#":
        at = rest.rfind("@")
        cut = rest.find(sep, at + 1 if at >= 0 else 0)
        if cut >= 0:
            end = min(end, cut)
    at = rest.rfind("@", 0, end)
    return rest[:at] if at >= 0 else None
