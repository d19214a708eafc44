"""Property tests: whatever text arrives as configuration or job arguments, Railyard answers with a
RailyardError (one clear message) or a valid value, never another exception."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.audio.config import AudioConfig
from jobs.backup.catalog import parse_backup_key
from jobs.backup.config import BackupConfig, BackupOptions
from jobs.migrations.config import MigrationConfig
from jobs.retention.config import COUNT_VARIABLES, MIN_KEEP_VARIABLE, WITHIN_VARIABLE, backup_policy_from_env
from jobs.retention.purge_config import parse_config
from railyard.core import registry
from railyard.core.alert_config import AlertConfig
from railyard.core.cron import next_run
from railyard.core.durations import parse_duration
from railyard.core.errors import ConfigError, RailyardError
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation
from railyard.core.worker_config import WorkerConfig

TEXT = st.text(max_size=80)
TRACEBACK = "Traceback (most recent call last)"  # the input itself may well say "Traceback"
URLISH = st.one_of(
    TEXT,
    st.builds(
        lambda s, rest: f"{s}://{rest}", st.sampled_from(["s3", "file", "http", "https", "redis", "postgresql"]), TEXT
    ),
    st.builds(lambda rest: f"http://[{rest}", TEXT),  # broken IPv6 literals make urlsplit raise
)


def one_clear_line(exc: RailyardError) -> None:
    text = str(exc)
    assert text and TRACEBACK not in text
    if not isinstance(exc, ConfigError):
        assert "\n" not in text


@given(TEXT)
def test_durations(text: str) -> None:
    try:
        value = parse_duration(text)
    except RailyardError as exc:
        one_clear_line(exc)
    else:
        assert value > timedelta(0)


@given(st.dictionaries(st.sampled_from(["ALERT_WEBHOOK_URL", "HEALTHCHECK_PING_URL", "BACKUP_STALE_AFTER"]), URLISH))
def test_alert_config(env: dict[str, str]) -> None:
    try:
        AlertConfig.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)


@given(
    st.dictionaries(
        st.sampled_from(
            ["REDIS_URL", "DATABASE_URL", "BACKUP_STORAGE_URL", "AWS_ENDPOINT_URL_S3", "WORKER_QUEUES", "LOG_LEVEL"]
        ),
        URLISH,
    )
)
def test_settings(env: dict[str, str]) -> None:
    try:
        Settings.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)


@given(st.dictionaries(st.sampled_from(["WORKER_HEARTBEAT_GRACE_S", "RAILYARD_RETRY_BACKOFF_SCALE"]), TEXT))
def test_worker_tuning(env: dict[str, str]) -> None:
    try:
        tuning = WorkerConfig.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)
    else:
        assert tuning.heartbeat_grace_s >= 1 and 0 < tuning.retry_backoff_scale <= 10


@given(
    st.dictionaries(
        st.sampled_from(["BACKUP_ZSTD_LEVEL", "BACKUP_ZSTD_THREADS", "BACKUP_PART_SIZE_MB", "BACKUP_ROW_COUNTS"]), TEXT
    )
)
def test_backup_tuning(env: dict[str, str]) -> None:
    try:
        BackupConfig.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)


@given(st.lists(TEXT, max_size=3), st.lists(TEXT, max_size=3), st.lists(TEXT, max_size=2))
def test_table_and_schema_patterns_become_single_arguments(
    tables: list[str], schemas: list[str], extra: list[str]
) -> None:
    try:
        options = BackupOptions(tables=tuple(tables), schemas=tuple(schemas), extra_args=tuple(extra))
    except RailyardError as exc:
        one_clear_line(exc)
        return
    args = options.pg_dump_args()
    for table in tables:
        assert f"--table={table}" in args  # one argv element each: no shell, no splitting


@given(URLISH, TEXT)
@settings(max_examples=200)
def test_backup_ids_and_keys(url: str, key: str) -> None:
    try:
        location = StorageLocation.parse(url)
    except RailyardError as exc:
        one_clear_line(exc)
        return
    except ValueError:
        return  # settings reject such a URL first (test_settings)
    parsed = parse_backup_key(location, key)
    assert parsed is None or parsed.key == key


@given(TEXT)
def test_job_paths_outside_the_registry_are_refused(func: str) -> None:
    try:
        spec = registry.require_spec(func)
    except RailyardError as exc:
        one_clear_line(exc)
        assert func not in registry.REGISTRY
    else:
        assert spec.func == func


CRONISH = st.one_of(
    TEXT,
    st.lists(
        st.sampled_from(["*", "0", "59", "*/5", "1-5", "30", "2", "31", "13", "7", "L", "?", "MON", ","]), max_size=6
    ).map(" ".join),
    st.sampled_from(["@daily", "@hourly", "@weekly", "@reboot", "@every 5m"]),
)


@given(
    st.dictionaries(
        st.sampled_from(["BACKUP_CRON", "RETENTION_CRON", "VERIFY_CRON", "STALENESS_CRON"]), CRONISH, min_size=1
    ),
    st.one_of(st.just("UTC"), st.sampled_from(["Europe/London", "America/New_York", "Nowhere/Else"]), TEXT),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
@settings(max_examples=300)
def test_cron_strings_and_time_zones(env: dict[str, str], zone: str, after: datetime) -> None:
    """A schedule that starts up has a next run for every entry, after ``after``; any other gets ConfigError."""
    try:
        config = ScheduleConfig.from_env({**env, "SCHEDULE_TIMEZONE": zone})
    except ConfigError as exc:
        one_clear_line(exc)
        assert all(name.split("=")[0] in {*env, "SCHEDULE_TIMEZONE"} for name in exc.problems)
        return
    for cron in (config.backup_cron, config.retention_cron, config.verify_cron, config.staleness_cron):
        assert next_run(cron, config.timezone, after) > after


@given(st.dictionaries(st.sampled_from([*COUNT_VARIABLES.values(), WITHIN_VARIABLE, MIN_KEEP_VARIABLE]), TEXT))
def test_backup_retention_policy(env: dict[str, str]) -> None:
    try:
        policy = backup_policy_from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)
    else:
        assert policy.min_keep >= 1


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


@given(
    st.dictionaries(
        st.sampled_from(["schema", "table", "column", "max_age", "batch_size", "lock_timeout_s", "other"]),
        st.one_of(TEXT, st.integers(), st.floats(allow_nan=True), st.booleans()),
    ),
)
def test_data_retention_policies_with_any_table_names(policy: dict[str, object]) -> None:
    """Table, schema and column names are data: a policy is either refused with a reason or kept verbatim."""
    text = "[[policy]]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in policy.items())
    try:
        [parsed] = parse_config(text, "retention.toml")
    except ConfigError as exc:
        one_clear_line(exc)
    else:
        assert parsed.column == policy["column"]
        assert policy["table"] in (parsed.table, f"{parsed.schema}.{parsed.table}")


@given(
    st.dictionaries(
        st.sampled_from(
            ["AUDIO_TABLE", "AUDIO_STORAGE_URL", "BACKUP_STORAGE_URL", "AUDIO_MAX_BYTES", "AUDIO_FORMAT", "AUDIO_MONO"]
        ),
        URLISH,
    )
)
def test_audio_settings(env: dict[str, str]) -> None:
    try:
        AudioConfig.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)


@given(
    st.dictionaries(
        st.sampled_from(["MIGRATIONS_DIR", "MIGRATION_LOCK_WAIT_S", "MIGRATION_LOCK_RETRIES", "MIGRATE_COMMAND"]),
        TEXT,
    )
)
def test_migration_config(env: dict[str, str]) -> None:
    try:
        MigrationConfig.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)


@given(st.dictionaries(st.sampled_from(["REDIS_RECONNECT_TIMEOUT_S", "RAILYARD_SERIALIZER"]), TEXT))
def test_worker_facing_settings(env: dict[str, str]) -> None:
    try:
        parsed = Settings.from_env(env)
    except ConfigError as exc:
        one_clear_line(exc)
    else:
        assert 0 <= parsed.redis_reconnect_timeout_s <= 3600
        assert parsed.serializer in ("pickle", "json")
