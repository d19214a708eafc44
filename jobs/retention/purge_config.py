"""Data retention policies from the TOML file named by ``RETENTION_CONFIG``.

Example::

    [[policy]]
    table = "public.events"      # optionally schema-qualified
    column = "created_at"        # a date, timestamp or timestamptz column
    max_age = "90d"              # rows older than this are deleted
    batch_size = 5000            # optional: rows per batch (one short transaction each)
    pause_s = 0.05               # optional: sleep between batches

Only names and numbers: there is no place for SQL. Names are checked against the
database's catalog before anything is deleted (:mod:`jobs.retention.purge`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from railyard.core.durations import Duration
from railyard.core.errors import ConfigError

CONFIG_VARIABLE = "RETENTION_CONFIG"
DEFAULT_BATCH_SIZE = 5000
DEFAULT_PAUSE_S = 0.05
DEFAULT_LOCK_TIMEOUT_S = 1.0
DEFAULT_STATEMENT_TIMEOUT_S = 2.0
# PostgreSQL's own schemas: rows there are the catalog (pg_authid holds the roles), never expired data.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated by the server

_REQUIRED = ("table", "column", "max_age")
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "batch_size": (int, 1, 100_000),
    "pause_s": (float, 0, 60),
    "lock_timeout_s": (float, 0.01, 60),
    "statement_timeout_s": (float, 0.1, 3600),
}
_KNOWN = frozenset({*_REQUIRED, "schema", *_NUMBERS})


@dataclass(frozen=True)
class PurgePolicy:
    table: str
    column: str
    max_age: Duration
    schema: str | None = None  # None: the table is found on the search_path, as unqualified SQL would
    batch_size: int = DEFAULT_BATCH_SIZE
    pause_s: float = DEFAULT_PAUSE_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


def config_from_env(environ: Mapping[str, str] | None = None) -> list[PurgePolicy]:
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_VARIABLE, "").strip()
    if not path:
        raise ConfigError(
            [f"{CONFIG_VARIABLE} is not set; point it at a TOML file of [[policy]] tables (see docs/retention.md)"]
        )
    return load_config(Path(path))


def load_config(path: Path) -> list[PurgePolicy]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{CONFIG_VARIABLE}={str(path)!r} cannot be read ({exc.strerror}); fix the path"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path} is not UTF-8 text; save it as UTF-8"]) from exc
    return parse_config(text, str(path))


def parse_config(text: str, source: str) -> list[PurgePolicy]:
    """Every policy in ``text``; raise one ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    extra = sorted(set(data) - {"policy"})
    if extra:
        problems.append(f"{source}: unknown top-level keys {extra}; only [[policy]] tables are allowed")
    raw_policies = data.get("policy", [])
    if not isinstance(raw_policies, list) or not all(isinstance(p, dict) for p in raw_policies):
        raise ConfigError([*problems, f"{source}: 'policy' must be an array of tables, written [[policy]]"])
    if not raw_policies:
        problems.append(f"{source} has no [[policy]] tables; add one per table to clean (see docs/retention.md)")

    policies: list[PurgePolicy] = []
    seen: dict[tuple[str | None, str, str], int] = {}
    for number, raw in enumerate(raw_policies, start=1):
        where = f"{source}, policy {number}"
        policy = _parse_policy(raw, where, problems)
        if policy is None:
            continue
        identity = (policy.schema, policy.table, policy.column)
        if identity in seen:
            problems.append(f"{where} repeats policy {seen[identity]} ({policy.name}.{policy.column}); keep one")
            continue
        seen[identity] = number
        policies.append(policy)
    if problems:
        raise ConfigError(problems)
    return policies


def _parse_policy(raw: dict[str, Any], where: str, problems: list[str]) -> PurgePolicy | None:
    before = len(problems)
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}; allowed keys are {sorted(_KNOWN)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")

    schema = _identifier(raw, "schema", where, problems) if "schema" in raw else None
    table = _identifier(raw, "table", where, problems) if "table" in raw else None
    column = _identifier(raw, "column", where, problems) if "column" in raw else None
    if table is not None and schema is None and "." in table:
        parts = table.split(".")
        if len(parts) != 2 or not all(parts):
            problems.append(
                f"{where}: table {table!r} has more than one dot; set 'schema' and 'table' separately for such names"
            )
        else:
            schema, table = parts
    if schema is not None and is_system_schema(schema):
        problems.append(f"{where}: {system_schema_refusal(schema, table)}")
    for key, name in (("schema", schema), ("table", table), ("column", column)):
        if name is not None and len(name.encode()) > MAX_IDENTIFIER_BYTES:
            problems.append(f"{where}: {key} {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte names")

    max_age: Duration | None = None
    if "max_age" in raw:
        value = raw["max_age"]
        try:
            max_age = Duration.parse(value) if isinstance(value, str) else None
        except ValueError as exc:
            problems.append(f"{where}: max_age {exc}")
        else:
            if max_age is None or max_age.is_zero:
                problems.append(f'{where}: max_age must be a duration above zero, e.g. "90d"')

    numbers: dict[str, Any] = {}
    for key, (kind, low, high) in _NUMBERS.items():
        if key not in raw:
            continue
        value = raw[key]
        valid_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not valid_type or not low <= value <= high:
            noun = "whole number" if kind is int else "number"
            problems.append(f"{where}: {key} = {value!r} must be a {noun} from {low:g} to {high:g}")
        else:
            numbers[key] = kind(value)
    lock_s = numbers.get("lock_timeout_s", DEFAULT_LOCK_TIMEOUT_S)
    statement_s = numbers.get("statement_timeout_s", DEFAULT_STATEMENT_TIMEOUT_S)
    if statement_s <= lock_s:
        problems.append(
            f"{where}: statement_timeout_s ({statement_s:g}) must be longer than lock_timeout_s ({lock_s:g}), "
            "so that waiting for a lock is reported as such"
        )

    if len(problems) > before or table is None or column is None or max_age is None:
        return None
    return PurgePolicy(table=table, column=column, max_age=max_age, schema=schema, **numbers)


def is_system_schema(schema: str) -> bool:
    """pg_catalog, information_schema, pg_toast, and the per-session pg_temp_N / pg_toast_temp_N schemas."""
    return schema in SYSTEM_SCHEMAS or schema.startswith(("pg_temp_", "pg_toast_temp_"))


def system_schema_refusal(schema: str, table: str | None) -> str:
    return (
        f"table {f'{schema}.{table}' if table else schema!r} is in the system schema {schema!r}; retention never "
        f"deletes from {', '.join(SYSTEM_SCHEMAS)}: name a table of your own, schema-qualified if in doubt"
    )


def _identifier(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = raw[key]
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: {key} must be a non-empty string")
        return None
    if "\x00" in value:
        problems.append(f"{where}: {key} {value!r} contains a NUL character, which no PostgreSQL name can")
        return None
    return value
