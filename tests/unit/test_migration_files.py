"""Migration files: names, sections, directives, checksums and what discovery reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs.migrations.files import (
    MigrationFileError,
    checksum,
    discover,
    find_gaps,
    parse_name,
    parse_python,
    parse_sql,
    scan,
)

DIR = Path("migrations")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("0001_init.sql", (1, "init", "sql")),
        ("0042_add-orders_Table.py", (42, "add-orders_Table", "py")),
        ("20240101120000_create_users.sql", (20240101120000, "create_users", "sql")),
        ("1_x.sql", (1, "x", "sql")),
        ("init.sql", None),
        ("0001-init.sql", None),
        ("0001_.sql", None),
        ("0001_init.SQL", None),
        ("v0001_init.sql", None),
        ("0001_init.sql.bak", None),
        ("\uff10\uff10\uff10\uff11_fullwidth.sql", None),  # full-width digits are not a version
        ("\u0661_arabic_indic.sql", None),
    ],
)
def test_parse_name(filename: str, expected: tuple[int, str, str] | None) -> None:
    assert expected == parse_name(filename)


def test_parse_sql_sections_and_lines() -> None:
    """Up and down are split at '-- migrate:down'; line numbers point into the file."""
    text = "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n"
    sections = parse_sql(text, "m.sql")
    assert ("\nCREATE TABLE a (id int);\n\n", "\nDROP TABLE a;\n") == (sections.up, sections.down)
    assert (1, 4, True) == (sections.up_line, sections.down_line, sections.transactional)


def test_parse_sql_without_down_or_with_empty_down() -> None:
    assert parse_sql("CREATE TABLE a (id int);", "m.sql").down is None
    assert parse_sql("CREATE TABLE a (id int);\n-- migrate:down\n-- nothing\n", "m.sql").down is None


def test_no_transaction_directive() -> None:
    text = "-- railyard:no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n"
    assert parse_sql(text, "m.sql").transactional is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- nothing here\n-- migrate:down\nDROP TABLE a;", "has no statements to apply"),
        ("CREATE TABLE a (id int);\n-- migrate:down\nx;\n-- migrate:down\ny;", "more than one"),
        ("-- migrate:down\nDROP TABLE a;\n-- migrate:up\nCREATE TABLE a (id int);", "comes after"),
        ("-- railyard:no-transactions\nCREATE TABLE a (id int);", "unknown directive railyard:no-transactions"),
        ("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;", "m.sql line 1: BEGIN is not allowed"),
        ("CREATE TABLE a (id int);\n\ncommit;", "m.sql line 3: commit is not allowed"),
        ("CREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\nCOMMIT;", "m.sql line 4: COMMIT is not allowed"),
        ("CREATE TABLE begin (atomic int);\nCOMMIT;\nINSERT INTO x VALUES (1);", "m.sql line 2: COMMIT is not allowed"),
        ("CREATE TABLE a (id int);\n\nCREAT TABLE b (id int);", 'm.sql line 3: syntax error at or near "CREAT"'),
        ("CREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE 'a;", "m.sql line 3: unterminated quoted string"),
    ],
)
def test_parse_sql_refuses(text: str, message: str) -> None:
    """Each malformed SQL migration is refused with a message naming the file and the fix."""
    with pytest.raises(MigrationFileError, match=message):
        parse_sql(text, "m.sql")


def test_do_block_with_begin_is_not_transaction_control() -> None:
    parse_sql("DO $$ BEGIN PERFORM 1; END $$;", "m.sql")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def upgrade(conn):\n    pass\n", (False, True)),
        ("def upgrade(conn):\n    pass\ndef downgrade(conn):\n    pass\n", (True, True)),
        ("# railyard:no-transaction\ndef upgrade(conn):\n    pass\n", (False, False)),
        ("from helpers import upgrade, downgrade\n", (True, True)),
        ("upgrade = print\n", (False, True)),
    ],
)
def test_parse_python(text: str, expected: tuple[bool, bool]) -> None:
    """(has_down, transactional), read without running the module."""
    assert expected == parse_python(text, "m.py")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def downgrade(conn):\n    pass\n", "defines no upgrade"),
        ("def upgrade(conn)\n    pass\n", "m.py line 1: Python syntax error"),
        ("def upgrade(conn):\n    if x:\n    pass\n", "m.py line 3: Python syntax error"),
    ],
)
def test_parse_python_refuses(text: str, message: str) -> None:
    with pytest.raises(MigrationFileError, match=message):
        parse_python(text, "m.py")


def test_checksum_ignores_line_endings_only() -> None:
    """A CRLF checkout of the same file is not drift; any other change is."""
    assert checksum(b"SELECT 1;\nSELECT 2;\n") == checksum(b"SELECT 1;\r\nSELECT 2;\r\n")
    assert checksum(b"SELECT 1;\n") != checksum(b"SELECT 1; \n")


@pytest.mark.parametrize(
    ("versions", "gaps"),
    [
        ([], []),
        ([1, 2, 3], []),
        ([1, 2, 5, 6, 8], [(3, 4), (7, 7)]),
        ([3, 4], []),  # numbering may start anywhere
        ([20240101120000, 20240102090000], []),  # timestamps: not reported
    ],
)
def test_find_gaps(versions: list[int], gaps: list[tuple[int, int]]) -> None:
    assert gaps == find_gaps(versions)


def test_scan_orders_and_reports_everything_at_once() -> None:
    """Ordering by number; malformed names, duplicates and bad files are problems; gaps are warnings."""
    files = {
        "0010_late.sql": b"SELECT 10;",
        "0002_second.py": b"def upgrade(conn):\n    pass\n",
        "0001_first.sql": b"SELECT 1;",
        "0004_dup_a.sql": b"SELECT 4;",
        "0004_dup_b.sql": b"SELECT 4;",
        "add_orders.sql": b"SELECT 0;",
        "0005_broken.sql": b"-- migrate:down\nSELECT 5;",
        "_helpers.py": b"x = 1",
        "README.md": b"# notes",
        ".hidden.sql": b"SELECT 0;",
    }
    discovery = scan(DIR, files)
    assert ["0001_first.sql", "0002_second.py", "0004_dup_a.sql", "0004_dup_b.sql", "0010_late.sql"] == [
        m.name for m in discovery.migrations
    ]
    assert 3 == len(discovery.problems)
    assert "migrations/0005_broken.sql: has no statements to apply" in discovery.problems[0]
    assert "migrations/add_orders.sql is not named like a migration" in discovery.problems[1]
    assert "version 4 is used by more than one file (0004_dup_a.sql, 0004_dup_b.sql)" in discovery.problems[2]
    assert (
        "numbering gap in migrations: nothing numbered 0003",
        "numbering gap in migrations: nothing numbered 0005-0009",
    ) == discovery.warnings


def test_discover_reads_a_directory(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;\n-- migrate:down\nSELECT 0;\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "0002_b.sql").write_text("SELECT 2;")
    discovery = discover(tmp_path)
    assert [(1, True, checksum(b"SELECT 1;\n-- migrate:down\nSELECT 0;\n"))] == [
        (m.version, m.has_down, m.checksum) for m in discovery.migrations
    ]
    assert () == discovery.problems


def test_discover_missing_directory_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(MigrationFileError, match="does not exist; create it or set MIGRATIONS_DIR"):
        discover(tmp_path / "nope")


def test_discover_reports_links_leaving_the_directory_and_entries_that_are_not_files(tmp_path: Path) -> None:
    """Nothing named like a migration is followed out of the directory or dropped silently."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    outside = tmp_path / "elsewhere.sql"
    outside.write_text("DROP TABLE users;")
    (directory / "0001_a.sql").write_text("SELECT 1;")
    (directory / "0002_inside_link.sql").symlink_to(directory / "0001_a.sql")
    (directory / "0003_outside.sql").symlink_to(outside)
    (directory / "0004_dangling.sql").symlink_to(directory / "gone.sql")
    os.mkfifo(directory / "0005_fifo.sql")
    (directory / "0006_dir.sql").mkdir()
    (directory / "_helper_link.sql").symlink_to(outside)  # not a migration: ignored, as before
    discovery = discover(directory)
    assert [1, 2] == [m.version for m in discovery.migrations]
    problems = discovery.problems
    assert 4 == len(problems), problems
    assert (
        f"{directory}/0003_outside.sql is a symbolic link to {outside.resolve()}, outside {directory.resolve()}"
        in (problems[0])
    )
    assert (
        f"{directory}/0004_dangling.sql is a symbolic link to {directory}/gone.sql, which does not exist"
        in (problems[1])
    )
    assert f"{directory}/0005_fifo.sql is not a regular file (it is a FIFO)" in problems[2]
    assert f"{directory}/0006_dir.sql is not a regular file (it is a directory)" in problems[3]


def test_a_version_too_large_for_bigint_is_a_problem_found_before_anything_runs() -> None:
    largest = 2**63 - 1
    discovery = scan(DIR, {f"{largest}_ok.sql": b"SELECT 1;", f"{largest + 1}_too_big.sql": b"SELECT 2;"})
    assert [largest] == [m.version for m in discovery.migrations]
    (problem,) = discovery.problems
    assert f"version {largest + 1} is too large (the ledger stores versions as bigint" in problem
