"""Property tests over job arguments, as other services might send them: whatever the text, a job
answers with one clear RailyardError (or does its normal work) and never deletes anything.

The jobs run in-process against a real PostgreSQL database and a local backup store that
holds committed backups and an audio row; after every example, all of them are still there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.audio import process_audio
from jobs.backup import run_backup
from jobs.backup.verify import verify_backup
from jobs.retention import prune_backups
from jobs.retention.config import COUNT_VARIABLES, MIN_KEEP_VARIABLE, WITHIN_VARIABLE
from railyard.core.errors import ConfigError, RailyardError
from railyard.core.storage import StorageLocation, open_store
from tests.audio_signals import create_audio_table
from tests.conftest import fresh_database
from tests.manifests import put_backup

TEXT = st.text(max_size=60)
TRACEBACK = "Traceback (most recent call last)"  # the input itself may well say "Traceback"
# What an environment variable can hold: no NUL, no lone surrogate.
ENV_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30)
IDS = st.one_of(TEXT, st.sampled_from(["../../etc/passwd", "app-20260101T000000Z", "*", "%", "'; DROP TABLE x; --"]))
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class World:
    """What must survive every example: committed backups and the audio table's row."""

    def __init__(self, database_url: str, storage: Path):
        self.database_url = database_url
        self.storage_url = str(storage)
        self.location = StorageLocation.parse(str(storage))
        self.store = open_store(self.location)
        now = datetime.now(UTC)
        for age_days in (1, 40, 400):
            put_backup(
                self.store,
                self.location,
                environment="development",
                database="app",
                finished_at=now - timedelta(days=age_days),
            )
        self.keys = self.object_keys()
        create_audio_table(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO audio_files (source_key) VALUES ('uploads/a.wav')")
        self.rows = self.audio_rows()

    def object_keys(self) -> set[str]:
        return {info.key for info in self.store.list(self.location.key())}

    def audio_rows(self) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute("SELECT id, source_key FROM audio_files ORDER BY id").fetchall()

    def env(self, **extra: str) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "BACKUP_STORAGE_URL": self.storage_url, **extra}

    def assert_intact(self) -> None:
        assert self.keys <= self.object_keys(), "a committed backup was deleted"
        assert self.rows == self.audio_rows(), "an audio row changed"


@pytest.fixture(scope="module")
def world(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fresh_database(pg_admin_url, "ry_props") as url:
        yield World(url, tmp_path_factory.mktemp("props-store"))


def answers_clearly(call, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with mock.patch.dict(os.environ, env):
        try:
            call()
        except RailyardError as exc:
            text = str(exc)
            assert text and TRACEBACK not in text
            if not isinstance(exc, ConfigError):
                assert "\n" not in text, text


@FEW
@given(backup_id=st.one_of(st.none(), IDS), database=st.one_of(st.none(), TEXT))
def test_verify_with_any_id_or_database(world: World, backup_id: str | None, database: str | None) -> None:
    answers_clearly(lambda: verify_backup(backup_id=backup_id, database=database), world.env())
    world.assert_intact()


@FEW
@given(database=TEXT, tables=st.lists(TEXT, max_size=2))
@example(database="\x00", tables=[])  # once a psycopg traceback
def test_backup_with_any_database_name_or_table_pattern(world: World, database: str, tables: list[str]) -> None:
    answers_clearly(lambda: run_backup(database=database or None, tables=tables or None), world.env())
    world.assert_intact()


@FEW
@given(file_id=st.one_of(TEXT, st.integers()))
def test_audio_with_any_file_id(world: World, file_id: str | int) -> None:
    answers_clearly(lambda: process_audio(file_id), world.env())
    world.assert_intact()


@FEW
@given(st.dictionaries(st.sampled_from([*COUNT_VARIABLES.values(), WITHIN_VARIABLE, MIN_KEEP_VARIABLE]), ENV_TEXT))
def test_an_invalid_retention_policy_deletes_nothing(world: World, policy_env: dict[str, str]) -> None:
    with mock.patch.dict(os.environ, world.env(**policy_env)):
        try:
            report = prune_backups(dry_run=True)
        except ConfigError as exc:
            assert TRACEBACK not in str(exc)
        else:
            assert isinstance(report, dict)
    world.assert_intact()
