"""Row counts read from real pg_dump streams equal count(*), on PostgreSQL 15, 16 and 18."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from jobs.backup.dump_archive import LARGE_OBJECTS_KEY, ArchiveFormatError, ArchiveReader
from tests.conftest import fresh_database
from tests.pgcluster import private_cluster, wheel_bin_dir

pytestmark = pytest.mark.timeout(300)

SYSTEM_BIN = Path("/usr/lib/postgresql/15/bin")
TRICKY = ["", "\n", "\\", "\t", "\r\n", "\\.", "\\N", "a\nb\\c\td", "\\.\n", "é€😀", "x" * 2000]
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
values = st.one_of(st.none(), st.sampled_from(TRICKY), text)

USER_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""


@pytest.fixture(scope="module", params=["15", "15 by pg_dump 18", "16", "18"])
def source(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """(URL of an empty database, bin directory of the pg_dump to take it with)."""
    server, _, by = str(request.param).partition(" by pg_dump ")
    tool_dir = wheel_bin_dir(int(by)) if by else SYSTEM_BIN if server == "15" else wheel_bin_dir(int(server))
    if server == "15":
        admin = request.getfixturevalue("pg_admin_url")
        with fresh_database(admin, "ry_counts") as url:
            yield url, tool_dir
        return
    with private_cluster(wheel_bin_dir(int(server))) as admin, fresh_database(admin, "ry_counts") as url:
        yield url, tool_dir


def dump(url: str, tool_dir: Path) -> bytes:
    """pg_dump as a backup runs it, into a pipe (what Railyard reads is never a seekable file)."""
    argv = [str(tool_dir / "pg_dump"), "--format=custom", "--compress=0", f"--dbname={url}"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def stream_counts(data: bytes, read_size: int) -> dict[str, int]:
    reader = ArchiveReader()
    for i in range(0, len(data), read_size):
        reader.feed(data[i : i + read_size])
    return reader.finish().table_counts()


def database_counts(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    counts = {}
    for schema, table in conn.execute(USER_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(str(schema), str(table)))
        counts[f"{schema}.{table}"] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
    large_objects = int(conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0])  # type: ignore[index]
    if large_objects:
        counts[LARGE_OBJECTS_KEY] = large_objects
    return counts


@st.composite
def contents(draw: st.DrawFn) -> dict[str, object]:
    return {
        "rows": draw(st.lists(st.tuples(values, values), max_size=25)),
        "series": draw(st.sampled_from([0, 1, 9, 3000])),  # rows made by the server: lengths 1..~600 bytes
        "zero_columns": draw(st.integers(0, 4)),
        "partitioned": draw(st.lists(st.integers(0, 199), max_size=30)),
        "large_objects": draw(st.lists(st.binary(max_size=200), max_size=3)),
        "read_size": draw(st.sampled_from([1 << 20, 4096, 777])),
    }


def fill(conn: psycopg.Connection[tuple[object, ...]], c: dict[str, object]) -> None:
    conn.execute("DROP SCHEMA IF EXISTS ex CASCADE")
    conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    conn.execute("CREATE SCHEMA ex")
    conn.execute("CREATE TABLE ex.texts (a text, b text)")
    with conn.cursor().copy("COPY ex.texts FROM STDIN") as copy:
        for row in c["rows"]:  # type: ignore[attr-defined]
            copy.write_row(row)
    conn.execute("CREATE TABLE ex.empty (a int)")
    conn.execute("CREATE TABLE ex.nothing ()")
    for _ in range(int(c["zero_columns"])):  # type: ignore[call-overload]
        conn.execute("INSERT INTO ex.nothing DEFAULT VALUES")
    series = "CREATE TABLE ex.series AS SELECT g AS id, repeat(E'\\n\\\\\\t', g % 4) || repeat('x', g % 600) AS t"
    conn.execute(sql.SQL(series + " FROM generate_series(1, {}) g").format(sql.Literal(c["series"])))
    conn.execute("CREATE TABLE ex.parted (k int, v text) PARTITION BY RANGE (k)")
    conn.execute("CREATE TABLE ex.parted_low PARTITION OF ex.parted FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE ex.parted_high PARTITION OF ex.parted FOR VALUES FROM (100) TO (200)")
    for k in c["partitioned"]:  # type: ignore[attr-defined]
        conn.execute("INSERT INTO ex.parted VALUES (%s, %s)", (k, f"v\n{k}"))
    for content in c["large_objects"]:  # type: ignore[attr-defined]
        conn.execute("SELECT lo_from_bytea(0, %s)", (content,))


EVERYTHING = {
    "rows": [(v, v) for v in TRICKY],
    "series": 3000,
    "zero_columns": 3,
    "partitioned": [0, 99, 100, 199],
    "large_objects": [b"", b"\x00\n\x05\x00\x00\x00", b"\\.\n"],
    "read_size": 4096,
}


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@example(c=EVERYTHING)
@given(contents())
def test_stream_counts_equal_count_star(source: tuple[str, Path], c: dict[str, object]) -> None:
    url, tool_dir = source
    with psycopg.connect(url, autocommit=True) as conn:
        fill(conn, c)
        expected = database_counts(conn)
    assert expected == stream_counts(dump(url, tool_dir), int(c["read_size"]))  # type: ignore[call-overload]


def test_a_cut_real_dump_fails_clearly(source: tuple[str, Path]) -> None:
    url, tool_dir = source
    with psycopg.connect(url, autocommit=True) as conn:
        fill(conn, {"rows": [("a", "b")], "series": 9, "zero_columns": 1, "partitioned": [1], "large_objects": [b"x"]})
    data = dump(url, tool_dir)
    for cut in (len(data) // 3, len(data) - 1):
        with pytest.raises(ArchiveFormatError, match=r"truncated|ended"):
            stream_counts(data[:cut], 4096)
