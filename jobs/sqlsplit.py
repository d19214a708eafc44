"""Split SQL text into statements the way the server would read it.

Semicolons inside quotes ('...', E'...', "..."), dollar quotes ($tag$...$tag$), comments
(-- and nested /* */) and SQL-standard function bodies (BEGIN ATOMIC ... END) do not end
a statement. Needed to run migrations statement by statement outside a transaction: a
multi-statement query string runs in an implicit transaction, where CREATE INDEX
CONCURRENTLY is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
TRANSACTION_CONTROL = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"})


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first character in the source
    code_line: int = 0  # 1-based line of its first character that is not a comment: where an error points

    def __post_init__(self) -> None:
        if not self.code_line:
            object.__setattr__(self, "code_line", self.line)


def split_statements(source: str) -> list[Statement]:
    """Statements of ``source`` without their terminating semicolons; blank ones are dropped."""
    statements: list[Statement] = []
    start = 0
    i = 0
    n = len(source)
    atomic_depth = 0
    previous_word = ""
    while i < n:
        ch = source[i]
        if ch == "-" and source.startswith("--", i):
            end = source.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and source.startswith("/*", i):
            i = _skip_block_comment(source, i)
        elif ch == "'":
            escapes = i > 0 and source[i - 1] in "eE" and not _is_word_char(source, i - 2)
            i = _skip_quoted(source, i, "'", backslash_escapes=escapes)
        elif ch == '"':
            i = _skip_quoted(source, i, '"', backslash_escapes=False)
        elif ch == "$" and not _is_word_char(source, i - 1) and (match := _DOLLAR_TAG.match(source, i)):
            close = source.find(match.group(0), match.end())
            i = n if close < 0 else close + len(match.group(0))
        elif ch.isalpha() or ch == "_":
            word_match = _WORD.match(source, i)
            stop = word_match.end() if word_match else i + 1
            word = source[i:stop].upper()
            if (word == "ATOMIC" and previous_word == "BEGIN") or (atomic_depth and word == "CASE"):
                atomic_depth += 1
            elif atomic_depth and word == "END":
                atomic_depth -= 1
            previous_word = word
            i = stop
        elif ch == ";" and not atomic_depth:
            _append(statements, source, start, i)
            start = i = i + 1
        else:
            i += 1
    _append(statements, source, start, n)
    return statements


def first_keyword(statement: str) -> str:
    """The statement's first word in upper case, after leading comments ('' if none)."""
    text = _strip_leading_comments(statement)
    match = _WORD.match(text)
    return match.group(0).upper() if match else ""


def is_transaction_control(statement: str) -> bool:
    """BEGIN, COMMIT, ROLLBACK and friends: statements that would end the migration's own transaction."""
    return first_keyword(statement) in TRANSACTION_CONTROL


def has_code(source: str) -> bool:
    """Whether ``source`` holds anything but whitespace and comments."""
    return bool(split_statements(source))


def _append(statements: list[Statement], source: str, start: int, end: int) -> None:
    chunk = source[start:end]
    if not _strip_leading_comments(chunk).strip():
        return
    text = chunk.strip()
    offset = len(chunk) - len(chunk.lstrip())
    line = source.count("\n", 0, start + offset) + 1
    comments = text[: len(text) - len(_strip_leading_comments(text))]
    statements.append(Statement(text=text, line=line, code_line=line + comments.count("\n")))


def _strip_leading_comments(text: str) -> str:
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :]
        elif text.startswith("/*"):
            text = text[_skip_block_comment(text, 0) :]
        else:
            return text


def _is_word_char(source: str, i: int) -> bool:
    return i >= 0 and (source[i].isalnum() or source[i] in "_$")


def _skip_block_comment(source: str, i: int) -> int:
    depth = 0
    n = len(source)
    while i < n:
        if source.startswith("/*", i):
            depth += 1
            i += 2
        elif source.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_quoted(source: str, i: int, quote: str, *, backslash_escapes: bool) -> int:
    i += 1
    n = len(source)
    while i < n:
        ch = source[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and source[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n
