"""Split SQL text into statements with PostgreSQL's own grammar (libpg_query, through pglast).

Migrations run statement by statement: outside a transaction, a multi-statement query
string runs in an implicit transaction, where CREATE INDEX CONCURRENTLY is refused; inside
one, a failure can name its statement and line. The parser that splits them is the
server's own (pglast's libpg_query is PostgreSQL 18's grammar), so quotes, dollar quotes,
comments and ``BEGIN ATOMIC ... END`` bodies are read exactly as the server reads them, and
no table or column name (``CREATE TABLE begin (atomic int)``) can pass for a keyword.
A file the grammar cannot read is refused before any of it runs, naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql, parser

from railyard.core.errors import PermanentError


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first token in the source
    code_line: int = 0  # where an error without a position points: the same first token (kept for callers)

    def __post_init__(self) -> None:
        if not self.code_line:
            object.__setattr__(self, "code_line", self.line)


class SqlSyntaxError(PermanentError):
    """SQL that PostgreSQL's grammar cannot read; ``line`` is 1-based in the text that was split."""

    def __init__(self, reason: str, line: int):
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}")


def split_statements(source: str) -> list[Statement]:
    """Statements of ``source`` without their terminating semicolons; empty ones are dropped."""
    try:
        slices = parser.split(source, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        reason = str(exc.args[0]) if exc.args else "syntax error"
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise SqlSyntaxError(reason, source.count("\n", 0, index) + 1) from exc
    return [Statement(text=source[s], line=source.count("\n", 0, s.start) + 1) for s in slices]


def is_transaction_control(statement: str) -> bool:
    """BEGIN, COMMIT, ROLLBACK, SAVEPOINT and friends: statements that would end the migration's own transaction."""
    try:
        parsed = parse_sql(statement)
    except parser.ParseError:
        return False
    return any(isinstance(raw.stmt, ast.TransactionStmt) for raw in parsed)


def has_code(source: str) -> bool:
    """Whether ``source`` holds any statement (not only whitespace, comments and semicolons)."""
    return bool(split_statements(source))
