"""A connection set up by keep_reconnecting waits for a restarted Redis and loses nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from railyard.core.reconnect import CappedBackoff, keep_reconnecting, retries_for
from tests.redisserver import RedisServer

DOWN_S = 3.0


def test_retries_add_up_to_the_timeout() -> None:
    assert [0.5, 1.0, 2.0, 2.0] == [CappedBackoff().compute(n) for n in (1, 2, 3, 5000)]
    for timeout_s in (1, 10, 60, 3600):
        retries = retries_for(timeout_s)
        waits = [CappedBackoff().compute(n) for n in range(1, retries + 1)]
        assert sum(waits) >= timeout_s > sum(waits[:-1])


@pytest.fixture
def restartable(tmp_path: Path):  # type: ignore[no-untyped-def]
    with RedisServer(tmp_path, "--appendonly", "yes", "--save", "") as server:
        yield server


def restart_after(server: RedisServer, down_s: float) -> threading.Thread:
    server.stop()

    def start_later() -> None:
        time.sleep(down_s)
        server.start()

    thread = threading.Thread(target=start_later)
    thread.start()
    return thread


def test_a_command_during_a_restart_completes_once_redis_is_back(restartable: RedisServer) -> None:
    conn = redis.Redis.from_url(restartable.url())
    keep_reconnecting(conn, timeout_s=30)
    conn.rpush("jobs", "a")
    thread = restart_after(restartable, DOWN_S)
    try:
        started = time.monotonic()
        assert 2 == conn.rpush("jobs", "b")  # the first push survived in the append-only file
        assert time.monotonic() - started >= DOWN_S - 1
        assert [b"a", b"b"] == conn.lrange("jobs", 0, -1)
    finally:
        thread.join()
        conn.close()
