"""What a backup should contain (options) and how to take it (tunables from the environment)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from railyard.core.envparse import whole_number
from railyard.core.errors import ConfigError, PermanentError
from railyard.core.storage.base import MiB

# The lowest level that stores no more than pg_dump -Fc on realistic data (1: 1.05x, 2: 1.003x; bench/README.md).
DEFAULT_ZSTD_LEVEL = 3
DEFAULT_UPLOAD_CONCURRENCY = 4
DEFAULT_UPLOAD_MEMORY_MB = 256  # upload buffers of one backup: part size x (parts in flight + 1)
ROW_COUNT_MODES = ("exact", "estimate", "off")

# pg_dump flags a user may add; anything else could change the format, the snapshot
# or what the manifest promises, so it is refused.
ALLOWED_EXTRA_FLAGS = frozenset(
    {
        "--no-owner",
        "--no-privileges",
        "--no-acl",
        "--no-comments",
        "--no-publications",
        "--no-subscriptions",
        "--no-security-labels",
        "--no-tablespaces",
        "--no-toast-compression",
        "--no-unlogged-table-data",
        "--no-large-objects",
        "--large-objects",
        "--quote-all-identifiers",
        "--load-via-partition-root",
        "--enable-row-security",
    }
)
ALLOWED_EXTRA_OPTIONS = frozenset({"--exclude-table-data", "--extension", "--lock-wait-timeout", "--exclude-extension"})
_PATTERN_RE = re.compile(r"^[\w.*?\"$ -]+$")


@dataclass(frozen=True)
class BackupOptions:
    """What goes into one backup. Validated on construction; no secrets."""

    schema_only: bool = False
    data_only: bool = False
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.schema_only and self.data_only:
            raise PermanentError("--schema-only and --data-only exclude each other; pass one of them")
        for pattern in (*self.tables, *self.exclude_tables, *self.schemas, *self.exclude_schemas):
            if not pattern or not _PATTERN_RE.match(pattern) or pattern.startswith("-"):
                raise PermanentError(
                    f"table or schema pattern {pattern!r} is not valid; use names with optional * and ? wildcards"
                )
        for arg in self.extra_args:
            name = arg.split("=", 1)[0]
            if name in ALLOWED_EXTRA_FLAGS and "=" not in arg:
                continue
            if name in ALLOWED_EXTRA_OPTIONS and "=" in arg and _PATTERN_RE.match(arg.split("=", 1)[1]):
                continue
            allowed = ", ".join(sorted(ALLOWED_EXTRA_FLAGS | {f"{o}=VALUE" for o in ALLOWED_EXTRA_OPTIONS}))
            raise PermanentError(f"pg_dump argument {arg!r} is not allowed; allowed: {allowed}")

    def pg_dump_args(self) -> list[str]:
        args: list[str] = []
        if self.schema_only:
            args.append("--schema-only")
        if self.data_only:
            args.append("--data-only")
        args += [f"--table={t}" for t in self.tables]
        args += [f"--exclude-table={t}" for t in self.exclude_tables]
        args += [f"--schema={s}" for s in self.schemas]
        args += [f"--exclude-schema={s}" for s in self.exclude_schemas]
        return args + list(self.extra_args)

    @classmethod
    def from_job_arguments(cls, **arguments: Any) -> BackupOptions:
        """From ``jobs.backup.run_backup``'s option arguments: lists and booleans, None meaning the default."""
        given = {name: value for name, value in arguments.items() if value is not None}
        values: dict[str, Any] = {name: tuple(v) if isinstance(v, list | tuple) else v for name, v in given.items()}
        return cls(**values)

    def as_job_arguments(self) -> dict[str, Any]:
        """The options as ``jobs.backup.run_backup`` keyword arguments (pg_dump arguments are not among them)."""
        if self.extra_args:
            raise PermanentError("pg_dump arguments cannot be passed to a queued backup; run the backup here")
        return {name: value for name, value in self.as_dict().items() if name != "extra_args"}

    def as_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


@dataclass(frozen=True)
class BackupConfig:
    """How backups are taken: compression, row counts, upload shape. From BACKUP_* variables."""

    zstd_level: int = DEFAULT_ZSTD_LEVEL
    zstd_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    row_counts: Literal["exact", "estimate", "off"] = "exact"
    part_size: int | None = None  # None: chosen from the database's size
    upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY
    upload_memory: int = DEFAULT_UPLOAD_MEMORY_MB * MiB

    def concurrency_for(self, part_size: int) -> int:
        """Parts uploaded at once: the configured number, fewer when their buffers would pass the budget.

        One backup holds part_size x (concurrency + 1) bytes of buffers; big databases get big
        parts (10,000 parts at most), so they upload fewer at a time. Never fewer than one.
        """
        return max(1, min(self.upload_concurrency, self.upload_memory // part_size - 1))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackupConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def integer(name: str, default: int, low: int, high: int) -> int:
            return whole_number(env, name, default, low, high, problems)

        level = integer("BACKUP_ZSTD_LEVEL", DEFAULT_ZSTD_LEVEL, 1, 19)
        threads = integer("BACKUP_ZSTD_THREADS", os.cpu_count() or 1, 0, 64)
        part_mb = integer("BACKUP_PART_SIZE_MB", 0, 0, 5 * 1024)
        if 0 < part_mb < 8:
            problems.append(f"BACKUP_PART_SIZE_MB={part_mb} is below 8 (S3 parts must be at least 5 MiB)")
        concurrency = integer("BACKUP_UPLOAD_CONCURRENCY", DEFAULT_UPLOAD_CONCURRENCY, 1, 32)
        memory_mb = integer("BACKUP_UPLOAD_MEMORY_MB", DEFAULT_UPLOAD_MEMORY_MB, 16, 64 * 1024)
        counts = env.get("BACKUP_ROW_COUNTS", "exact").strip().lower() or "exact"
        if counts not in ROW_COUNT_MODES:
            problems.append(f"BACKUP_ROW_COUNTS={counts!r} is not one of {', '.join(ROW_COUNT_MODES)}")
            counts = "exact"
        if problems:
            raise ConfigError(problems)
        return cls(
            zstd_level=level,
            zstd_threads=threads,
            row_counts=counts,  # type: ignore[arg-type]
            part_size=part_mb * MiB if part_mb else None,
            upload_concurrency=concurrency,
            upload_memory=memory_mb * MiB,
        )
