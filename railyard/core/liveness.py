"""When a worker was last seen alive: rq forgets a dead worker after its TTL, this record stays.

Every Railyard worker stamps ``WORKER_SEEN_KEY`` with each heartbeat, so ``railyard status``
can tell "no worker for ten minutes" (a crashed service) from "a worker is restarting".
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis

WORKER_SEEN_KEY = "railyard:workers:last_seen"  # epoch seconds of the newest heartbeat of any worker
SEEN_TTL_S = 90 * 86400  # long enough for any monitoring period, short enough to disappear with the Redis db's use


def record_worker_seen(connection: Redis, now: datetime) -> None:
    connection.set(WORKER_SEEN_KEY, f"{now.timestamp():.3f}", ex=SEEN_TTL_S)


def last_worker_seen(connection: Redis) -> datetime | None:
    raw = connection.get(WORKER_SEEN_KEY)
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC)
    except ValueError:
        return None
