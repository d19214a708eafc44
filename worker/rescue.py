"""Abandoned jobs rescued within two minutes: a cheap look at the started registries, often.

rq hands a job whose heartbeat lapsed to its abandoned-job handling only in its registry
cleanup, which an idle worker runs every ``--maintenance-interval`` (10 min) and a busy one
not at all: a killed backup waited 10 to 20 minutes. Each worker here instead asks Redis,
every ``WORKER_RESCUE_INTERVAL_S`` (15 s) whether it is idle or running a job, for the
oldest expiry in each of its queues' started registries (one ``ZRANGEBYSCORE … LIMIT 0 1``
per queue, in one round trip). Only when an entry has expired does it run rq's own
``StartedJobRegistry.cleanup`` for that queue, under rq's registry-cleaning lock so that
two workers, or this and rq's maintenance, never retry the same job twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis import Redis
from rq.queue import Queue
from rq.registry import StartedJobRegistry

# rq's maintenance takes the same key for 899 s; a rescue needs milliseconds, so a short
# expiry keeps a worker killed mid-rescue from blocking the next one for long.
RESCUE_LOCK_S = 30


def queues_with_expired_jobs(connection: Redis, queues: Sequence[Queue], now: float) -> list[Queue]:
    """The queues whose started registry holds an entry whose heartbeat lapsed before ``now``."""
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrangebyscore(queue.started_job_registry.key, 0, now, start=0, num=1)
        found = pipe.execute()
    return [queue for queue, expired in zip(queues, found, strict=True) if expired]


def rescue_abandoned(
    connection: Redis,
    queues: Sequence[Queue],
    now: float,
    exception_handlers: list[Callable[..., Any]] | None = None,
) -> list[str]:
    """Retry or fail every abandoned job of ``queues``; the names of the queues that had one."""
    rescued = []
    for queue in queues_with_expired_jobs(connection, queues, now):
        if not connection.set(queue.registry_cleaning_key, 1, nx=True, ex=RESCUE_LOCK_S):
            continue  # another worker (or rq's maintenance) is cleaning this queue right now
        try:
            registry = StartedJobRegistry(
                queue.name, connection=connection, job_class=queue.job_class, serializer=queue.serializer
            )
            registry.cleanup(timestamp=now, exception_handlers=exception_handlers)
            rescued.append(queue.name)
        finally:
            connection.delete(queue.registry_cleaning_key)
    return rescued
