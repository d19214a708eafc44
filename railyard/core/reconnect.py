"""Long-running services ride out a Redis restart instead of exiting.

redis-py retries a command a few times on a connection error (about 7 s in all); a Redis
restart or failover takes longer. ``keep_reconnecting`` makes every command on the
connection retry with backoff for ``REDIS_RECONNECT_TIMEOUT_S``, so a worker waiting for
Redis keeps its running job, and a job's result is written once Redis is back. Commands
are retried only on connection errors and timeouts, never on errors Redis answered with.
"""

from __future__ import annotations

from redis import Redis
from redis.backoff import AbstractBackoff
from redis.retry import Retry

RETRY_CAP_S = 2.0
RETRY_BASE_S = 0.25
CONNECT_TIMEOUT_S = 5.0


class CappedBackoff(AbstractBackoff):
    """0.5 s, 1 s, then every 2 s. (redis-py's ExponentialBackoff overflows after 1,023 failures.)"""

    def compute(self, failures: int) -> float:
        return min(RETRY_CAP_S, RETRY_BASE_S * 2 ** min(failures, 8))


def retries_for(timeout_s: float) -> int:
    """How many retries of CappedBackoff add up to at least ``timeout_s`` of waiting."""
    backoff = CappedBackoff()
    waited, retries = 0.0, 0
    while waited < timeout_s:
        retries += 1
        waited += backoff.compute(retries)
    return retries


def keep_reconnecting(connection: Redis, timeout_s: float) -> None:
    """Retry every command on ``connection`` for about ``timeout_s`` seconds of Redis being away (0: don't)."""
    if timeout_s <= 0:
        return
    connection.set_retry(Retry(CappedBackoff(), retries_for(timeout_s)))
    kwargs = connection.connection_pool.connection_kwargs
    if kwargs.get("socket_connect_timeout") is None:
        # A host that drops packets would otherwise hold each attempt for the OS's ~2 minutes.
        kwargs["socket_connect_timeout"] = CONNECT_TIMEOUT_S
