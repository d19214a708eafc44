"""The SQL splitter is PostgreSQL's own grammar: statements end where the server says they end."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.migrations.sqlsplit import SqlSyntaxError, has_code, is_transaction_control, split_statements


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
        ("DO $$ BEGIN PERFORM 1; END $$; SELECT 2", ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"]),
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
        # Names that look like keywords: the hand-written splitter took this for a BEGIN ATOMIC body.
        (
            "CREATE TABLE begin (atomic int); COMMIT; SELECT 1",
            ["CREATE TABLE begin (atomic int)", "COMMIT", "SELECT 1"],
        ),
        ("SELECT begin, atomic, case_ FROM t; END", ["SELECT begin, atomic, case_ FROM t", "END"]),
        ("SELECT $1; SELECT 2", ["SELECT $1", "SELECT 2"]),
        ("  ;; -- only a comment\n ; ", []),
    ],
)
def test_split_statements(source: str, expected: list[str]) -> None:
    """Each case: the statements the server would see, in order."""
    assert expected == [s.text for s in split_statements(source)]


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("\n\nSELECT 1;\nSELECT 2;\n", [3, 4]),
        ("-- header\n\nCREATE TABLE a (id int);\n\n  -- why\n  CREATE INDEX ON a (id);\n", [3, 6]),
        ("SELECT 'é'; SELECT\n'ü';\n\nSELECT 3", [1, 1, 4]),
        ("-- railyard:no-transaction\n/* a\n b */ CREATE INDEX CONCURRENTLY i ON a (id);\n", [3]),
    ],
)
def test_statement_lines_point_at_the_first_token(source: str, lines: list[int]) -> None:
    """Line numbers (with the statement's text) let an error name the line of the file."""
    statements = split_statements(source)
    assert lines == [s.line for s in statements] == [s.code_line for s in statements]
    assert all(s.text.splitlines()[0] in source.splitlines()[s.line - 1] for s in statements)


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        ("SELECT 1;\nSELECT 'unterminated; SELECT 2", 2, "unterminated quoted string"),
        ("SELECT 1;\n\n  SELEC 2;", 3, 'syntax error at or near "SELEC"'),
    ],
)
def test_sql_the_grammar_cannot_read_is_an_error_naming_its_line(source: str, line: int, reason: str) -> None:
    with pytest.raises(SqlSyntaxError) as caught:
        split_statements(source)
    assert (line, True) == (caught.value.line, caught.value.reason.startswith(reason))


@pytest.mark.parametrize(
    ("statement", "control"),
    [
        ("BEGIN", True),
        ("-- c\ncommit", True),
        ("/* c */ START TRANSACTION", True),
        ("end", True),
        ("ROLLBACK", True),
        ("SAVEPOINT a", True),
        ("RELEASE SAVEPOINT a", True),
        ("PREPARE TRANSACTION 'x'", True),
        ("CREATE TABLE begin_x (id int)", False),
        ("CREATE TABLE begin (atomic int)", False),
        ("CREATE TABLE commit (id int)", False),
        ("DO $$ BEGIN END $$", False),
        ("", False),
    ],
)
def test_transaction_control(statement: str, control: bool) -> None:
    assert control == is_transaction_control(statement)


@pytest.mark.parametrize(
    ("source", "expected"),
    [("", False), ("  \n-- nothing\n/* here */", False), ("SELECT 1", True)],
)
def test_has_code(source: str, expected: bool) -> None:
    assert expected == has_code(source)


# Statements that fool splitters written by hand: keyword-like names, semicolons in quotes,
# comments, dollar quotes and function bodies; and the transaction control they might hide.
TRICKY = [
    "CREATE TABLE begin (atomic int)",
    'CREATE TABLE "end" ("begin" int, "case" text)',
    "SELECT 'BEGIN ATOMIC; COMMIT;' AS begin",
    "SELECT E'it\\'s; END' AS atomic",
    "SELECT $$ ; COMMIT; $$",
    "SELECT $tag$ $$ ; $tag$",
    "SELECT 1 /* ; BEGIN ATOMIC ; */",
    "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END",
    "CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
    "CREATE INDEX CONCURRENTLY ON begin (atomic)",
    "UPDATE t SET end_at = now() WHERE begin_at < now()",
]
CONTROL = ["COMMIT", "BEGIN", "END", "ROLLBACK", "START TRANSACTION", "SAVEPOINT s", "commit work"]
SEPARATORS = st.sampled_from([";", ";\n", " ;\n\n", ";\n-- a comment; COMMIT;\n", ";/* BEGIN; */", ";;\n"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(TRICKY + CONTROL), min_size=1, max_size=8),
    st.lists(SEPARATORS, min_size=8, max_size=8),
)
def test_no_arrangement_of_tricky_statements_fools_the_splitter(statements: list[str], separators: list[str]) -> None:
    """Joined any way, the statements come back one by one, and exactly the real COMMITs are control."""
    source = "".join(f"{stmt}{sep}" for stmt, sep in zip(statements, separators, strict=False))
    found = split_statements(source)
    assert statements == [s.text for s in found]
    assert [s in CONTROL for s in statements] == [is_transaction_control(s.text) for s in found]
