"""RAILYARD_SERIALIZER: parsing, the rq serializer it selects, and jobs written with another serializer."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import fakeredis
import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import DefaultSerializer, JSONSerializer

from railyard.core.errors import ConfigError
from railyard.core.serializer import (
    JSONJob,
    func_label,
    is_readable,
    job_class,
    job_kwargs,
    rq_serializer,
    serializer_from_env,
    unreadable_reason,
)


class Payload:
    """Unpickling this creates a directory: how a pickle runs code in whoever loads it."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


@pytest.fixture
def conn() -> fakeredis.FakeStrictRedis:
    return fakeredis.FakeStrictRedis()


def test_serializer_from_env_defaults_to_pickle_and_reads_json() -> None:
    assert ("pickle", "json") == (serializer_from_env({}), serializer_from_env({"RAILYARD_SERIALIZER": "Json"}))


def test_serializer_from_env_rejects_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match=r"RAILYARD_SERIALIZER='marshal' is not one of pickle, json"):
        serializer_from_env({"RAILYARD_SERIALIZER": "marshal"})


def test_each_name_selects_rqs_serializer_and_job_class() -> None:
    assert (DefaultSerializer, JSONSerializer) == (rq_serializer("pickle"), rq_serializer("json"))
    assert (Job, JSONJob) == (job_class("pickle"), job_class("json"))


def test_a_pickled_job_read_as_json_is_unreadable_and_never_unpickled(conn, tmp_path: Path) -> None:
    in_args, in_meta = tmp_path / "from-args", tmp_path / "from-meta"
    job = Queue("backup", connection=conn).enqueue(
        "jobs.diagnostics.ping", kwargs={"delay_s": Payload(in_args)}, meta={"m": Payload(in_meta)}
    )
    fetched = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert (False, "<unreadable>", {}) == (is_readable(fetched), func_label(fetched), job_kwargs(fetched))
    assert not in_args.exists() and not in_meta.exists()

    # The same job read with pickle runs both payloads: the check above could fail.
    unpickled = Job.fetch(job.id, connection=conn, serializer=DefaultSerializer)
    assert "jobs.diagnostics.ping" == func_label(unpickled)
    assert in_args.is_dir() and in_meta.is_dir()


def test_a_json_job_is_read_with_json(conn) -> None:
    queue = Queue("backup", connection=conn, serializer=JSONSerializer)
    job = queue.enqueue("jobs.backup.run_backup", kwargs={"database": "app", "tables": ["public.*"]})
    stored = json.loads(zlib.decompress(conn.hget(job.key, "data")))
    assert ["jobs.backup.run_backup", None, [], {"database": "app", "tables": ["public.*"]}] == stored
    fetched = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert ("jobs.backup.run_backup", {"database": "app", "tables": ["public.*"]}) == (
        func_label(fetched),
        job_kwargs(fetched),
    )
    assert "<unreadable>" == func_label(Job.fetch(job.id, connection=conn))  # pickle cannot read JSON


def test_json_job_class_reads_and_writes_json_when_given_no_serializer(conn) -> None:
    """rq-scheduler calls job_class.create and job_class.fetch without a serializer."""
    created = JSONJob.create("jobs.diagnostics.ping", kwargs={"delay_s": 1}, connection=conn, meta={"k": [1, 2]})
    created.save()
    assert ["jobs.diagnostics.ping", None, [], {"delay_s": 1}] == json.loads(
        zlib.decompress(conn.hget(created.key, "data"))
    )
    assert {"k": [1, 2]} == json.loads(conn.hget(created.key, "meta"))
    fetched = JSONJob.fetch(created.id, connection=conn)
    assert ({"delay_s": 1}, {"k": [1, 2]}) == (fetched.kwargs, fetched.meta)


def test_the_refusal_reason_says_what_happened_and_how_to_fix_it() -> None:
    json_reason = unreadable_reason("json")
    assert json_reason.startswith("refused: the job's data is not JSON, so it was neither unpickled nor run")
    assert "railyard.core.client" in json_reason and "JSONSerializer" in json_reason
    pickle_reason = unreadable_reason("pickle")
    assert "RAILYARD_SERIALIZER=json on every Railyard process" in pickle_reason
    assert "\n" not in json_reason + pickle_reason
