"""Migration files: naming, parsing and checksums; discovery of a migration directory.

A migration is ``NNNN_slug.sql`` or ``NNNN_slug.py``, ordered by its number:

- SQL: the statements to apply, optionally followed by a ``-- migrate:down`` line and the
  statements that reverse them (a leading ``-- migrate:up`` line is allowed).
- Python: a module defining ``upgrade(conn)`` and optionally ``downgrade(conn)``.

Either may declare ``railyard:no-transaction`` on a comment line of its own to run outside
a transaction (needed for ``CREATE INDEX CONCURRENTLY``). Parsing never executes code:
Python files are inspected with ``ast``. Files starting with ``_`` or ``.`` and files that
are neither ``.sql`` nor ``.py`` are not migrations and are ignored.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jobs.migrations.sqlsplit import SqlSyntaxError, Statement, is_transaction_control, split_statements
from railyard.core.errors import PermanentError

# ASCII digits only: \d would take full-width and other Unicode digits as a version.
NAME_RE = re.compile(r"^(?P<version>[0-9]+)_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<kind>sql|py)$")
MAX_VERSION = 2**63 - 1  # the ledger's version column is a bigint
SQL_MARKER_RE = re.compile(r"^[ \t]*--[ \t]*migrate:(?P<which>up|down)\b.*$", re.IGNORECASE | re.MULTILINE)
DIRECTIVE_RE = re.compile(r"^[ \t]*(?:--|#)[ \t]*railyard:(?P<name>\S*)[ \t]*$", re.MULTILINE)
KNOWN_DIRECTIVES = frozenset({"no-transaction"})
# Timestamp-numbered migrations (YYYYMMDDHHMMSS) have "gaps" between every pair: not worth reporting.
GAP_REPORT_MAX_VERSION = 10**9

Kind = Literal["sql", "py"]


class MigrationFileError(PermanentError):
    """A migration file cannot be used as written."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str  # file name, e.g. 0003_add_orders.sql
    kind: Kind
    path: Path
    checksum: str
    transactional: bool
    has_down: bool
    up_sql: str | None = None  # SQL only: the up section as it appears in the file
    down_sql: str | None = None
    up_line: int = 1  # line of the file where the up section starts (for error positions)
    down_line: int = 0

    @property
    def display(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Discovery:
    """The migrations of one directory, and what is wrong with it."""

    directory: Path | None
    migrations: tuple[MigrationFile, ...]
    problems: tuple[str, ...] = ()  # any problem stops a run: malformed names, duplicates, bad files
    warnings: tuple[str, ...] = ()  # reported, not fatal: gaps in the numbering

    def by_version(self) -> dict[int, MigrationFile]:
        return {m.version: m for m in self.migrations}


@dataclass(frozen=True)
class SqlSections:
    up: str
    down: str | None
    up_line: int
    down_line: int
    transactional: bool


def checksum(data: bytes) -> str:
    """sha256 of the file with line endings normalised, so a CRLF checkout is not drift."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def parse_name(filename: str) -> tuple[int, str, Kind] | None:
    """(version, slug, kind) of a well-formed migration file name, else None."""
    match = NAME_RE.match(filename)
    if not match:
        return None
    kind: Kind = "sql" if match["kind"] == "sql" else "py"
    return int(match["version"]), match["slug"], kind


def is_candidate(filename: str) -> bool:
    """Whether a file in a migration directory is meant to be a migration."""
    return not filename.startswith(("_", ".")) and filename.lower().endswith((".sql", ".py"))


def directives(text: str, display: str) -> frozenset[str]:
    found = {m["name"] for m in DIRECTIVE_RE.finditer(text)}
    unknown = sorted(found - KNOWN_DIRECTIVES)
    if unknown:
        raise MigrationFileError(
            f"{display}: unknown directive railyard:{unknown[0]}; the only one is railyard:no-transaction"
        )
    return frozenset(found)


def parse_sql(text: str, display: str) -> SqlSections:
    """Split a SQL migration into its up and down sections and check what it may contain."""
    transactional = "no-transaction" not in directives(text, display)
    markers = list(SQL_MARKER_RE.finditer(text))
    ups = [m for m in markers if m["which"].lower() == "up"]
    downs = [m for m in markers if m["which"].lower() == "down"]
    if len(ups) > 1 or len(downs) > 1:
        raise MigrationFileError(
            f"{display}: has more than one '-- migrate:up' or '-- migrate:down' line; keep one each"
        )
    if ups and downs and ups[0].start() > downs[0].start():
        raise MigrationFileError(f"{display}: '-- migrate:up' comes after '-- migrate:down'; put the up section first")
    up_start = ups[0].end() if ups else 0
    up_end = downs[0].start() if downs else len(text)
    up = text[up_start:up_end]
    down = text[downs[0].end() :] if downs else None
    up_line = text.count("\n", 0, up_start) + 1
    down_line = text.count("\n", 0, downs[0].end()) + 1 if downs else 0
    up_statements = _statements(up, up_line, display)
    if not up_statements:
        raise MigrationFileError(f"{display}: has no statements to apply; write them before '-- migrate:down'")
    down_statements = _statements(down, down_line, display) if down is not None else []
    if not down_statements:
        down = None
    _refuse_transaction_control(up_statements, up_line, display)
    _refuse_transaction_control(down_statements, down_line, display)
    return SqlSections(up=up, down=down, up_line=up_line, down_line=down_line, transactional=transactional)


def _statements(section: str, offset: int, display: str) -> list[Statement]:
    """The section's statements, read by PostgreSQL's grammar; a syntax error names its line in the file."""
    try:
        return split_statements(section)
    except SqlSyntaxError as exc:
        raise MigrationFileError(
            f"{display} line {offset + exc.line - 1}: {exc.reason}; fix the SQL (nothing of it has run)"
        ) from exc


def _refuse_transaction_control(statements: Iterable[Statement], offset: int, display: str) -> None:
    for statement in statements:
        if is_transaction_control(statement.text):
            word = statement.text.split(None, 1)[0]
            raise MigrationFileError(
                f"{display} line {offset + statement.line - 1}: {word} is not allowed in a migration; Railyard runs "
                "each migration in its own transaction (or statement by statement with -- railyard:no-transaction)"
            )


def parse_python(text: str, display: str) -> tuple[bool, bool]:
    """(has_down, transactional) of a Python migration, read without running it."""
    try:
        tree = ast.parse(text, filename=display)
    except SyntaxError as exc:
        raise MigrationFileError(f"{display} line {exc.lineno}: Python syntax error: {exc.msg}") from exc
    defined = _top_level_names(tree)
    if "upgrade" not in defined:
        raise MigrationFileError(f"{display}: defines no upgrade(conn) function; add one (and optionally downgrade)")
    transactional = "no-transaction" not in directives(text, display)
    return "downgrade" in defined, transactional


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def load_file(path: Path, data: bytes) -> MigrationFile:
    """Parse one well-named migration file; raise MigrationFileError if it cannot be used."""
    parsed = parse_name(path.name)
    if parsed is None:
        raise MigrationFileError(f"{path}: not a migration file name (NNNN_slug.sql or NNNN_slug.py)")
    version, _, kind = parsed
    if version > MAX_VERSION:
        raise MigrationFileError(
            f"{path}: version {version} is too large (the ledger stores versions as bigint, at most {MAX_VERSION}); "
            "renumber it"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    text = text.replace("\r\n", "\n")
    migration_file = functools.partial(
        MigrationFile, version=version, name=path.name, kind=kind, path=path, checksum=checksum(data)
    )
    if kind == "sql":
        sections = parse_sql(text, str(path))
        return migration_file(
            transactional=sections.transactional,
            has_down=sections.down is not None,
            up_sql=sections.up,
            down_sql=sections.down,
            up_line=sections.up_line,
            down_line=sections.down_line,
        )
    has_down, transactional = parse_python(text, str(path))
    return migration_file(transactional=transactional, has_down=has_down)


def scan(directory: Path, files: Mapping[str, bytes], unreadable: Iterable[str] = ()) -> Discovery:
    """Build a Discovery from a directory's files (name -> bytes) and the problems of entries that
    could not be read as files (``unreadable``); pure."""
    migrations: list[MigrationFile] = []
    problems: list[str] = list(unreadable)
    for filename in sorted(files):
        if not is_candidate(filename):
            continue
        path = directory / filename
        if parse_name(filename) is None:
            problems.append(
                f"{path} is not named like a migration; rename it NNNN_slug{Path(filename).suffix} "
                "(e.g. 0007_add_orders.sql), or start its name with _ if it is not one"
            )
            continue
        try:
            migrations.append(load_file(path, files[filename]))
        except MigrationFileError as exc:
            problems.append(str(exc))
    problems.extend(duplicate_problems(migrations))
    versions = sorted({m.version for m in migrations})
    warnings = [
        f"numbering gap in {directory}: nothing numbered {_span(low, high)}" for low, high in find_gaps(versions)
    ]
    migrations.sort(key=lambda m: (m.version, m.name))
    return Discovery(directory, tuple(migrations), tuple(problems), tuple(warnings))


def duplicate_problems(migrations: Iterable[MigrationFile]) -> list[str]:
    seen: dict[int, list[MigrationFile]] = {}
    for m in migrations:
        seen.setdefault(m.version, []).append(m)
    return [
        f"version {version} is used by more than one file ({', '.join(sorted(m.name for m in group))}); "
        "give each migration its own number"
        for version, group in sorted(seen.items())
        if len(group) > 1
    ]


def find_gaps(versions: list[int]) -> list[tuple[int, int]]:
    """Missing ranges (inclusive) between consecutive sorted versions, for sequentially numbered ones."""
    if not versions or versions[-1] >= GAP_REPORT_MAX_VERSION:
        return []
    return [(low + 1, high - 1) for low, high in itertools.pairwise(versions) if high - low > 1]


def _span(low: int, high: int) -> str:
    return f"{low:04d}" if low == high else f"{low:04d}-{high:04d}"


def discover(directory: Path) -> Discovery:
    """Read every candidate file of ``directory`` (which must exist) and scan them."""
    if not directory.is_dir():
        raise MigrationFileError(
            f"migration directory {directory} does not exist; create it or set MIGRATIONS_DIR to the right path"
        )
    files: dict[str, bytes] = {}
    problems: list[str] = []
    root = directory.resolve()
    for entry in sorted(directory.iterdir()):
        if not is_candidate(entry.name):
            continue
        problem = entry_problem(entry, root)
        if problem:
            problems.append(problem)
            continue
        try:
            files[entry.name] = entry.read_bytes()
        except OSError as exc:
            problems.append(f"{entry} cannot be read ({exc.strerror}); fix its permissions")
    return scan(directory, files, problems)


def entry_problem(entry: Path, root: Path) -> str | None:
    """Why a migration-named entry cannot be used: a link leaving the directory, or not a regular file."""
    hint = "or start its name with _ if it is not a migration"
    if entry.is_symlink():
        target = Path(os.readlink(entry))
        resolved = entry.resolve()
        if not resolved.exists():
            return f"{entry} is a symbolic link to {target}, which does not exist; fix or remove the link, {hint}"
        if not resolved.is_relative_to(root):
            return (
                f"{entry} is a symbolic link to {resolved}, outside {root}; migrations must live in the directory: "
                f"copy the file in instead, {hint}"
            )
    try:
        mode = entry.stat().st_mode
    except OSError as exc:
        return f"{entry} cannot be read ({exc.strerror}); fix it, {hint}"
    if not stat.S_ISREG(mode):
        return f"{entry} is not a regular file (it is a {_file_kind(mode)}); replace it with a file, {hint}"
    return None


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")
