"""The producer API writes jobs with RAILYARD_SERIALIZER, and every job's arguments survive JSON."""

from __future__ import annotations

import inspect
import json
import zlib
from datetime import datetime
from typing import Any

import fakeredis
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import import_attribute

from railyard.core import client, registry
from railyard.core.errors import ConfigError, PermanentError
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.serializer import func_label
from railyard.core.settings import Settings
from scheduler.schedule import build_schedule, targets_from_settings

# Arguments as producers send them (README, "Enqueue from other services"): one sample per job.
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "jobs.diagnostics.ping": [{}, {"delay_s": 0.5}],
    "jobs.diagnostics.retry_probe": [{}],
    "jobs.backup.run_backup": [
        {},
        {"database": "analytics"},
        {"all_databases": True},
        {"schema_only": True, "tables": ["public.*"], "exclude_tables": ["audit_log"]},
        {"data_only": True, "schemas": ["app"], "exclude_schemas": ["tmp"]},
    ],
    "jobs.verify.verify_backup": [{}, {"backup_id": "app-20261120T030000Z"}, {"database": "app"}],
    "jobs.migrate.run_migrations": [
        {},
        {"to": 3, "allow_out_of_order": True, "backup": False},
        {"accept_checksums": ["3", "railyard:1"]},
    ],
    "jobs.audio.process_audio": [{"audio_file_id": 42}, {"audio_file_id": "42"}],
    "jobs.retention.prune_backups": [{}, {"dry_run": True}],
    "jobs.retention.purge_rows": [{}, {"dry_run": True}],
    "jobs.staleness.check_stale_backups": [{}],
    "jobs.summary.send_weekly_summary": [{}],
    "jobs.copy.copy_backup": [{"key": "pg/production/app/2026/01/02/app-20260102T030405Z.dump.zst"}],
}


@pytest.fixture
def conn() -> fakeredis.FakeStrictRedis:
    return fakeredis.FakeStrictRedis()


def stored(conn: fakeredis.FakeStrictRedis, job: Job) -> Any:
    return json.loads(zlib.decompress(conn.hget(job.key, "data")))


def test_every_registered_job_has_argument_samples() -> None:
    assert set(registry.REGISTRY) == set(SAMPLES)


@pytest.mark.parametrize(
    ("func", "kwargs"), [(func, kwargs) for func, samples in SAMPLES.items() for kwargs in samples]
)
def test_arguments_round_trip_through_json_to_the_function(conn, func: str, kwargs: dict[str, Any]) -> None:
    job = client.enqueue(func, conn, serializer="json", **kwargs)
    fetched = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert (func, kwargs) == (fetched.func_name, fetched.kwargs)
    inspect.signature(import_attribute(func)).bind(**fetched.kwargs)  # the function accepts what arrives


def test_what_enqueue_backup_sends_round_trips_through_json(conn) -> None:
    job = client.enqueue_backup(conn, database="app", tables=["public.orders"], schemas=["app"], serializer="json")
    fetched = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert job.kwargs == fetched.kwargs
    inspect.signature(import_attribute("jobs.backup.run_backup")).bind(**fetched.kwargs)


def test_the_schedules_job_arguments_round_trip_through_json(conn) -> None:
    env = {"BACKUP_DATABASE_URLS": "app=postgresql://db/app analytics=postgresql://db2/analytics"}
    settings = Settings.from_env(env)
    entries = build_schedule(ScheduleConfig(), targets_from_settings(settings, env), registry.REGISTRY)
    for entry in entries:
        job = client.enqueue(entry.func, conn, serializer="json", **entry.kwargs)
        assert dict(entry.kwargs) == Job.fetch(job.id, connection=conn, serializer=JSONSerializer).kwargs


def test_enqueue_writes_with_railyard_serializer_from_the_environment(conn, monkeypatch) -> None:
    monkeypatch.setenv("RAILYARD_SERIALIZER", "json")
    job = client.enqueue_ping(conn, delay_s=1.5)
    assert ["jobs.diagnostics.ping", None, [], {"delay_s": 1.5}] == stored(conn, job)
    assert {registry.POLICY_META_KEY: {"max_attempts": 1}} == json.loads(conn.hget(job.key, "meta"))
    audio = client.enqueue_audio(7, conn)
    assert ["jobs.audio.process_audio", None, [], {"audio_file_id": 7}] == stored(conn, audio)


def test_an_explicit_serializer_wins_over_the_environment(conn, monkeypatch) -> None:
    monkeypatch.setenv("RAILYARD_SERIALIZER", "json")
    job = client.enqueue_backup(conn, database="app", serializer="pickle")
    assert "<unreadable>" == func_label(Job.fetch(job.id, connection=conn, serializer=JSONSerializer))
    assert "jobs.backup.run_backup" == func_label(Job.fetch(job.id, connection=conn))


def test_a_bad_serializer_variable_stops_the_producer(conn, monkeypatch) -> None:
    monkeypatch.setenv("RAILYARD_SERIALIZER", "jsn")
    with pytest.raises(ConfigError, match="RAILYARD_SERIALIZER='jsn' is not one of pickle, json"):
        client.enqueue_ping(conn)
    assert [] == conn.keys("rq:job:*")


def test_an_argument_json_cannot_carry_is_refused_by_name(conn) -> None:
    with pytest.raises(PermanentError) as info:
        client.enqueue("jobs.verify.verify_backup", conn, serializer="json", backup_id=datetime(2026, 11, 20))
    assert str(info.value).startswith("argument 'backup_id' of jobs.verify.verify_backup cannot be sent as JSON")
    assert [] == conn.keys("rq:job:*")
