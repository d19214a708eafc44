"""What goes into a backup: option validation, pg_dump arguments, tables counted, part sizes."""

import inspect

import pytest

from jobs.backup import run_backup
from jobs.backup.config import BackupConfig, BackupOptions
from jobs.backup.rowcounts import included_tables
from railyard.core.client import enqueue_backup
from railyard.core.errors import ConfigError, PermanentError
from railyard.core.registry import BACKUP_PARAMS
from railyard.core.storage import MAX_PARTS, MIN_PART_SIZE, choose_part_size

TiB = 1024**4


def test_schema_and_data_only_exclude_each_other() -> None:
    with pytest.raises(PermanentError, match="exclude each other"):
        BackupOptions(schema_only=True, data_only=True)


@pytest.mark.parametrize("arg", ["--file=/etc/passwd", "--format=plain", "--snapshot=x", "-f", "--compress=9"])
def test_unsafe_pg_dump_arguments_are_refused(arg: str) -> None:
    with pytest.raises(PermanentError, match="not allowed"):
        BackupOptions(extra_args=(arg,))


@pytest.mark.parametrize("pattern", ["--help", "a;b", "", "x'y"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PermanentError, match="not valid"):
        BackupOptions(tables=(pattern,))


def test_pg_dump_arguments() -> None:
    options = BackupOptions(data_only=True, tables=("public.a*",), exclude_tables=("b",), extra_args=("--no-owner",))
    assert ["--data-only", "--table=public.a*", "--exclude-table=b", "--no-owner"] == options.pg_dump_args()


def test_registry_job_and_producer_name_the_same_backup_arguments() -> None:
    """BACKUP_PARAMS, run_backup and enqueue_backup list one argument list, in one order."""
    job = list(inspect.signature(run_backup).parameters)
    producer = [
        name
        for name, param in inspect.signature(enqueue_backup).parameters.items()
        if param.kind is param.KEYWORD_ONLY and name not in ("job_id", "serializer")
    ]
    assert [p.name for p in BACKUP_PARAMS] == job
    assert job == producer
    assert {"database", "all_databases"} == set(job) - set(BackupOptions().as_job_arguments())


def test_job_arguments_round_trip() -> None:
    options = BackupOptions(data_only=True, tables=("public.a*",), exclude_schemas=("audit",))
    arguments = options.as_job_arguments()
    assert {"data_only": True, "tables": ["public.a*"], "exclude_schemas": ["audit"]}.items() <= arguments.items()
    assert options == BackupOptions.from_job_arguments(**arguments)
    assert BackupOptions() == BackupOptions.from_job_arguments(tables=None, schemas=None, schema_only=False)


def test_pg_dump_arguments_are_not_job_arguments() -> None:
    with pytest.raises(PermanentError, match="cannot be passed to a queued backup"):
        BackupOptions(extra_args=("--no-owner",)).as_job_arguments()


ROWS = [("public", "accounts", 5), ("public", "audit", 9), ("sales", "accounts", 3), ("sales", "orders", 7)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (BackupOptions(), ["public.accounts", "public.audit", "sales.accounts", "sales.orders"]),
        (BackupOptions(schema_only=True), []),
        (BackupOptions(tables=("accounts",)), ["public.accounts", "sales.accounts"]),
        (BackupOptions(tables=("public.a*",)), ["public.accounts", "public.audit"]),
        (BackupOptions(exclude_tables=("sales.*",)), ["public.accounts", "public.audit"]),
        (BackupOptions(schemas=("sales",)), ["sales.accounts", "sales.orders"]),
        (BackupOptions(exclude_schemas=("pub?ic",)), ["sales.accounts", "sales.orders"]),
        (
            BackupOptions(extra_args=("--exclude-table-data=audit",)),
            ["public.accounts", "sales.accounts", "sales.orders"],
        ),
    ],
)
def test_tables_counted_follow_the_dump_filters(options: BackupOptions, expected: list[str]) -> None:
    assert expected == [f"{s}.{t}" for s, t, _ in included_tables(ROWS, options)]


@pytest.mark.parametrize(
    ("expected_size", "part_size"),
    [
        (0, MIN_PART_SIZE),
        (10 * 1024**3, MIN_PART_SIZE),
        (100 * 1024**3, 21 * 1024**2),
        (5 * TiB, 1049 * 1024**2),
    ],
)
def test_part_size_fits_the_object_in_10000_parts(expected_size: int, part_size: int) -> None:
    chosen = choose_part_size(expected_size)
    assert part_size == chosen
    assert expected_size * 2 <= chosen * MAX_PARTS or chosen == 5 * 1024**3


def test_tuning_reports_every_bad_variable() -> None:
    env = {
        "BACKUP_ZSTD_LEVEL": "40",
        "BACKUP_ROW_COUNTS": "some",
        "BACKUP_PART_SIZE_MB": "4",
        "BACKUP_UPLOAD_CONCURRENCY": "x",
        "BACKUP_UPLOAD_MEMORY_MB": "8",
    }
    with pytest.raises(ConfigError) as info:
        BackupConfig.from_env(env)
    assert 5 == len(info.value.problems)


@pytest.mark.parametrize(
    ("database_size", "memory_mb", "concurrency"),
    [
        (10 * 1024**3, 256, 4),  # 8 MiB parts: the configured 4 (40 MiB of buffers)
        (500 * 1024**3, 256, 1),  # 103 MiB parts: one in flight, one filling (206 MiB)
        (300 * 1024**3, 256, 3),  # 62 MiB parts: three in flight, one filling (248 MiB)
        (300 * 1024**3, 1024, 4),  # a larger budget: the configured 4
        (5 * TiB, 256, 1),  # 1 GiB parts: never fewer than one
    ],
)
def test_upload_concurrency_keeps_buffers_within_the_memory_budget(
    database_size: int, memory_mb: int, concurrency: int
) -> None:
    tuning = BackupConfig.from_env({"BACKUP_UPLOAD_MEMORY_MB": str(memory_mb)})
    part_size = choose_part_size(database_size)
    chosen = tuning.concurrency_for(part_size)
    assert concurrency == chosen
    assert part_size * (chosen + 1) <= memory_mb * 1024**2 or chosen == 1
