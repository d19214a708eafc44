"""Property tests: whatever text arrives as configuration or job arguments, Railyard answers with a
RailyardError (one clear message) or a valid value, never another exception."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs import registry
from jobs.backup_config import BackupOptions, BackupTuning
from jobs.catalog import parse_backup_key
from jobs.storage import StorageLocation
from railyard.alert_config import AlertConfig
from railyard.durations import parse_duration
from railyard.errors import ConfigError, RailyardError
from railyard.settings import Settings
from worker.tuning import WorkerTuning

TEXT = st.text(max_size=80)
URLISH = st.one_of(
    TEXT,
    st.builds(
        lambda s, rest: f"{s}://{rest}", st.sampled_from(["s3", "file", "http", "https", "redis", "postgresql"]), TEXT
    ),
    st.builds(lambda rest: f"http://[{rest}", TEXT),  # broken IPv6 literals make urlsplit raise
)


def one_clear_line(exc: RailyardError) -> None:
    text = str(exc)
    assert text and "Traceback" not in text
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
        tuning = WorkerTuning.from_env(env)
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
        BackupTuning.from_env(env)
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
