"""How Railyard's jobs are written to and read from Redis: ``RAILYARD_SERIALIZER``, pickle or json.

Every process that writes or reads Railyard's jobs (each producer, the worker, the
scheduler, the ``railyard`` command) must use the same serializer: a job written with one
cannot be read with the other. Pickle is the default because it is rq's, so producers that
enqueue with plain rq keep working; with json, job data is only ever parsed as JSON, so a
pickled job that reaches Railyard is never unpickled: reading it fails, and the worker
refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from redis import Redis
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import DefaultSerializer, JSONSerializer, Serializer

from railyard.core.errors import ConfigError

SERIALIZER_VARIABLE = "RAILYARD_SERIALIZER"

SerializerName = Literal["pickle", "json"]
DEFAULT_SERIALIZER: SerializerName = "pickle"
_NAMES: dict[str, SerializerName] = {"pickle": "pickle", "json": "json"}
SERIALIZER_NAMES = tuple(_NAMES)

# Shown instead of a job's function when its data cannot be read with this process's serializer.
UNREADABLE_FUNC = "<unreadable>"


def parse_serializer(raw: str, problems: list[str]) -> SerializerName:
    """The serializer named by ``raw`` (empty: the default); on a bad value, record the problem."""
    name = _NAMES.get(raw.strip().lower() or DEFAULT_SERIALIZER)
    if name is None:
        problems.append(
            f"{SERIALIZER_VARIABLE}={raw.strip()[:40]!r} is not one of {', '.join(SERIALIZER_NAMES)}; "
            "use json when every producer enqueues with railyard.core.client or rq's JSONSerializer, "
            "else pickle (the default)"
        )
        return DEFAULT_SERIALIZER
    return name


def serializer_from_env(environ: Mapping[str, str] | None = None) -> SerializerName:
    """``RAILYARD_SERIALIZER`` alone, for producers that do not load Railyard's other settings."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    name = parse_serializer(env.get(SERIALIZER_VARIABLE, ""), problems)
    if problems:
        raise ConfigError(problems)
    return name


def rq_serializer(name: SerializerName) -> Serializer:
    """The rq serializer to pass to every Queue, Job and registry."""
    return JSONSerializer if name == "json" else DefaultSerializer


class JSONJob(Job):
    """A Job read and written as JSON unless told otherwise, for code that passes rq no serializer.

    rq-scheduler fetches and creates jobs through its ``job_class`` without a serializer,
    which would mean pickle.
    """

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None):
        super().__init__(id, connection=connection, serializer=serializer or JSONSerializer)


def job_class(name: SerializerName) -> type[Job]:
    return JSONJob if name == "json" else Job


def is_readable(job: Job) -> bool:
    """Whether ``job``'s function and arguments can be read with the serializer it was fetched with."""
    try:
        job.func_name  # noqa: B018 -- reading it parses the job's data
    except DeserializationError:
        return False
    return True


def func_label(job: Job) -> str:
    """``job``'s function path, or ``<unreadable>`` when it was written with another serializer."""
    if not is_readable(job):
        return UNREADABLE_FUNC
    return job.func_name or "?"


def job_kwargs(job: Job) -> dict[str, Any]:
    """``job``'s keyword arguments, or none when it was written with another serializer."""
    return dict(job.kwargs or {}) if is_readable(job) else {}


def unreadable_reason(name: SerializerName) -> str:
    """Why the worker refused a job it could not read, and how to fix it (one line)."""
    if name == "json":
        return (
            "refused: the job's data is not JSON, so it was neither unpickled nor run (RAILYARD_SERIALIZER=json; "
            "its producer probably used rq's default pickle serializer); enqueue with railyard.core.client, or with "
            "rq's JSONSerializer (Queue(..., serializer=JSONSerializer))"
        )
    return (
        "refused: the job's data cannot be read with RAILYARD_SERIALIZER=pickle, so it was not run (its producer "
        "probably used rq's JSONSerializer); set RAILYARD_SERIALIZER=json on every Railyard process, or enqueue "
        "with rq's default serializer"
    )
