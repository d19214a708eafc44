"""The producer API: typed helpers other Python services call to enqueue Railyard jobs.

Services that do not install Railyard enqueue by string path instead, with no options;
the worker applies the registry's policy either way (see README, "Enqueue from other
services"). Jobs are written with the serializer RAILYARD_SERIALIZER names (pickle unless
set), which must be the worker's; ``serializer=`` overrides it per call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from railyard.core import registry
from railyard.core.errors import PermanentError
from railyard.core.job_arguments import check_arguments
from railyard.core.serializer import SerializerName, rq_serializer, serializer_from_env
from railyard.core.settings import DEFAULT_REDIS_URL


def enqueue(
    func_path: str,
    connection: Redis,
    *,
    job_id: str | None = None,
    queue: str | None = None,
    serializer: SerializerName | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue the registered job ``func_path`` with keyword arguments and its registry policy.

    ``serializer`` defaults to RAILYARD_SERIALIZER (a bad value raises ConfigError).
    """
    spec = registry.require_spec(func_path)
    name = serializer or serializer_from_env()
    if name == "json":
        require_json_arguments(func_path, kwargs)
    check_arguments(spec.func, spec.params, (), kwargs)
    options: dict[str, Any] = {
        "job_timeout": spec.timeout_s,
        "result_ttl": spec.result_ttl_s,
        "failure_ttl": spec.failure_ttl_s,
        "meta": {registry.POLICY_META_KEY: {"max_attempts": spec.max_attempts}},
    }
    if spec.max_attempts > 1:
        options["retry"] = Retry(max=spec.max_attempts - 1, interval=list(spec.backoff_s))
    rq_queue = Queue(queue or spec.queue, connection=connection, serializer=rq_serializer(name))
    return rq_queue.enqueue(func_path, kwargs=kwargs, job_id=job_id, **options)


def require_json_arguments(func_path: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse, naming the argument, what JSON cannot carry (rq's own error names only a type)."""
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise PermanentError(
                f"argument {key!r} of {func_path} cannot be sent as JSON ({exc}; RAILYARD_SERIALIZER=json): "
                "pass strings, numbers, booleans, None, lists or dicts of them"
            ) from exc


def enqueue_backup(
    connection: Redis,
    *,
    database: str | None = None,
    schema_only: bool = False,
    data_only: bool = False,
    tables: list[str] | None = None,
    exclude_tables: list[str] | None = None,
    schemas: list[str] | None = None,
    exclude_schemas: list[str] | None = None,
    all_databases: bool = False,
    job_id: str | None = None,
    serializer: SerializerName | None = None,
) -> Job:
    """Back up ``database`` (default: the worker's DATABASE_URL) on the worker's server."""
    return enqueue(
        "jobs.backup.run_backup",
        connection,
        job_id=job_id,
        serializer=serializer,
        database=database,
        schema_only=schema_only,
        data_only=data_only,
        tables=tables or [],
        exclude_tables=exclude_tables or [],
        schemas=schemas or [],
        exclude_schemas=exclude_schemas or [],
        all_databases=all_databases,
    )


def enqueue_ping(
    connection: Redis, *, queue: str = "backup", delay_s: float = 0.0, serializer: SerializerName | None = None
) -> Job:
    return enqueue("jobs.diagnostics.ping", connection, queue=queue, serializer=serializer, delay_s=delay_s)


def enqueue_audio(
    audio_file_id: int | str,
    connection: Redis | None = None,
    *,
    job_id: str | None = None,
    serializer: SerializerName | None = None,
) -> Job:
    """Enqueue ``jobs.audio.process_audio`` for one row of the audio files table.

    Without ``connection``, Redis is reached at REDIS_URL.
    """
    if connection is None:
        connection = Redis.from_url(os.environ.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL)
    return enqueue(
        "jobs.audio.process_audio", connection, job_id=job_id, serializer=serializer, audio_file_id=audio_file_id
    )
