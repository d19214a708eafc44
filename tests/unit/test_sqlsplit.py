"""The SQL splitter: statements end at semicolons outside quotes, comments and function bodies."""

from __future__ import annotations

import pytest

from jobs.sqlsplit import first_keyword, has_code, is_transaction_control, split_statements


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';'; SELECT 2", ["SELECT ';'", "SELECT 2"]),
        ("SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
        ("SELECT E'a\\';b'; SELECT 2", ["SELECT E'a\\';b'", "SELECT 2"]),
        ("SELECT 'a\\'; SELECT 2", ["SELECT 'a\\'", "SELECT 2"]),  # standard strings: backslash is literal
        ('SELECT 1 AS "x;y"; SELECT 2', ['SELECT 1 AS "x;y"', "SELECT 2"]),
        ("SELECT 1 -- a; comment\n; SELECT 2", ["SELECT 1 -- a; comment", "SELECT 2"]),
        ("SELECT /* a; /* nested; */ b; */ 1; SELECT 2", ["SELECT /* a; /* nested; */ b; */ 1", "SELECT 2"]),
        (
            "DO $$ BEGIN PERFORM 1; END $$; SELECT 2",
            ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"],
        ),
        (
            "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql; SELECT 2",
            ["CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql", "SELECT 2"],
        ),
        (
            "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; "
            "SELECT 2; END; SELECT 3",
            [
                "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; "
                "SELECT 2; END",
                "SELECT 3",
            ],
        ),
        ("SELECT $1; SELECT 2", ["SELECT $1", "SELECT 2"]),
        ("  ;; -- only a comment\n ; ", []),
        ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
    ],
)
def test_split_statements(source: str, expected: list[str]) -> None:
    """Each case: the statements the server would see, in order."""
    assert expected == [s.text for s in split_statements(source)]


@pytest.mark.parametrize(
    ("source", "lines", "code_lines"),
    [
        ("\n\nSELECT 1;\nSELECT 2;\n", [3, 4], [3, 4]),
        # a leading comment stays with its statement (the server ignores it), so the line is the comment's;
        # code_line is the statement's own first line, the one an error without a position names
        ("-- header\n\nCREATE TABLE a (id int);\n\n  -- why\n  CREATE INDEX ON a (id);\n", [1, 5], [3, 6]),
        ("-- railyard:no-transaction\n/* a\n b */ CREATE INDEX CONCURRENTLY i ON a (id);\n", [1], [3]),
    ],
)
def test_statement_lines_point_at_the_first_character(source: str, lines: list[int], code_lines: list[int]) -> None:
    """Line numbers (with the statement's text) let an error name the line of the file."""
    statements = split_statements(source)
    assert lines == [s.line for s in statements]
    assert code_lines == [s.code_line for s in statements]
    assert all(source.splitlines()[s.line - 1].strip().startswith(s.text.splitlines()[0]) for s in statements)


@pytest.mark.parametrize(
    ("statement", "keyword", "control"),
    [
        ("BEGIN", "BEGIN", True),
        ("-- c\ncommit", "COMMIT", True),
        ("/* c */ START TRANSACTION", "START", True),
        ("end", "END", True),
        ("ROLLBACK", "ROLLBACK", True),
        ("SAVEPOINT a", "SAVEPOINT", True),
        ("CREATE TABLE begin_x (id int)", "CREATE", False),
        ("DO $$ BEGIN END $$", "DO", False),
        ("", "", False),
    ],
)
def test_transaction_control(statement: str, keyword: str, control: bool) -> None:
    assert (keyword, control) == (first_keyword(statement), is_transaction_control(statement))


@pytest.mark.parametrize(
    ("source", "expected"),
    [("", False), ("  \n-- nothing\n/* here */", False), ("SELECT 1", True)],
)
def test_has_code(source: str, expected: bool) -> None:
    assert expected == has_code(source)
