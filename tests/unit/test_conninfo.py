"""Connection strings are read by libpq's parser, once: every spelling, one password, no traceback."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railyard.core.conninfo import Conninfo, ConninfoError, conninfo_problems, password_forms
from railyard.core.errors import ConfigError
from railyard.core.settings import Settings

PASSWORD = "Sentinel-pw @:/%#?&=+ end"
ENCODED = quote(PASSWORD, safe="")


@pytest.mark.parametrize(
    ("text", "dbname", "host"),
    [
        (f"postgresql://app:{ENCODED}@db.internal:6543/shop", "shop", "db.internal:6543"),
        (f"postgres://app:{ENCODED}@db.internal/shop?sslmode=require", "shop", "db.internal:5432"),
        (f"postgresql://app:{ENCODED}@/?dbname=shop&host=db.internal&port=6543", "shop", "db.internal:6543"),
        (f"postgresql://app:{ENCODED}@h1:5432,h2:5433/shop", "shop", "h1:5432,h2:5433"),
        (f"host=db.internal port=6543 dbname=shop user=app password='{PASSWORD}'", "shop", "db.internal:6543"),
        (f"postgresql://app:{ENCODED}@[::1]:6543/shop", "shop", "[::1]:6543"),
    ],
)
def test_every_spelling_gives_the_same_decoded_password(text: str, dbname: str, host: str) -> None:
    info = Conninfo.parse(text)
    assert (PASSWORD, "app", dbname, host) == (info.password, info.user, info.dbname({}), info.host({}))


def test_database_from_pgdatabase_when_the_string_names_none() -> None:
    assert "fromenv" == Conninfo.parse("postgresql://app@h/").dbname({"PGDATABASE": "fromenv"})


def test_child_processes_get_the_decoded_password_in_their_environment_only() -> None:
    info = Conninfo.parse(f"postgresql://app:{ENCODED}@db:6543/shop?sslmode=disable")
    argv = info.argv_conninfo()
    env = info.child_env({"PATH": "/bin"})
    assert PASSWORD == env["PGPASSWORD"]
    assert "Sentinel" not in argv
    assert {"user": "app", "host": "db", "port": "6543", "dbname": "shop", "sslmode": "disable"} == (
        Conninfo.parse(argv).params
    )


def test_with_dbname_keeps_server_and_credentials() -> None:
    other = Conninfo.parse(f"postgresql://app:{ENCODED}@db:6543/shop").with_dbname("other db")
    assert ("other db", PASSWORD, "db:6543") == (other.dbname({}), other.password, other.host({}))
    assert "postgresql://app:***@db:6543/other%20db" == other.display({})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:p%zz@h/db", "write each reserved character"),
        ("postgresql://app:pw@[::1/db", "close the IPv6 address"),
        ("postgresql://app:pw@h/db?nosuch=1", "libpq keywords"),
        ("mysql://app:pw@h/db", "is not a PostgreSQL URL (scheme 'mysql')"),
        ("postgresql://app:pw@h:99999/db", "port '99999', which is not a port number"),
        ("postgresql://app:pw@h:\uff10/db", "which is not a port number"),
        ("postgresql://app:pw@h:\uff11\uff12/db", "which is not a port number"),
        ("host=h port=70000", "port '70000'"),
    ],
)
def test_bad_strings_are_clear_errors_that_do_not_quote_them(text: str, expected: str) -> None:
    problems = conninfo_problems("RESTORE_TARGET_URL", text)
    assert 1 == len(problems) and expected in problems[0] and "RESTORE_TARGET_URL" in problems[0]
    assert "pw@" not in problems[0] and "p%zz" not in problems[0]
    with pytest.raises(ConninfoError):
        Conninfo.parse(text)


def test_password_forms_work_on_strings_libpq_refuses() -> None:
    assert {"p%zz-secret"} <= set(password_forms("postgresql://app:p%zz-secret@h/db"))
    assert {PASSWORD, ENCODED} <= set(password_forms(f"postgresql://app:{ENCODED}@h:99999/db"))
    assert {"it's secret"} <= set(password_forms(r"host=h password='it\'s secret"))


URL_PIECES = st.sampled_from(
    ["postgresql://", "postgres://", "u", ":", "@", "[", "]", "::1", "/", "?", "&", "=", "%", "%4", "%zz", "%41",
     "host=", "port=", "dbname=", "password=", "'", "\\", " ", ",", "h", "5432", "99999", "-1", "\uff10", "#", "\t"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(URL_PIECES | st.text(max_size=3), max_size=14).map("".join))
def test_hostile_url_settings_never_cause_a_traceback(text: str) -> None:
    """DATABASE_URL, VERIFY and named URLs: a clear problem or a valid setting, never another exception."""
    text = text.replace("\x00", "")
    problems = conninfo_problems("DATABASE_URL", text)
    if not problems:
        info = Conninfo.parse(text)
        info.argv_conninfo(), info.display({}), info.host({}), info.dbname({})
    password_forms(text)
    with contextlib.suppress(ConfigError):  # the one exception allowed out: every problem, clearly
        Settings.from_env({"DATABASE_URL": text, "REDIS_URL": text if text.startswith("redis") else ""})
