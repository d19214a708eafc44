"""A Redis lock that only its owner can release: SET NX with a random token, compare-and-delete.

rq-scheduler's own lock deletes the key whoever holds it, so a scheduler whose lock
expired mid-run could free the lock a second scheduler had since taken.
"""

from __future__ import annotations

import uuid

from redis import Redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    def __init__(self, connection: Redis, key: str, ttl_s: int):
        self.connection = connection
        self.key = key
        self.ttl_s = max(1, int(ttl_s))
        self.token = uuid.uuid4().hex
        self.held = False
        self._release = connection.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lock if it is free; it expires by itself after ``ttl_s`` if never released."""
        self.held = bool(self.connection.set(self.key, self.token, nx=True, ex=self.ttl_s))
        return self.held

    def release(self) -> bool:
        """Free the lock if this owner still holds it; True if it did."""
        if not self.held:
            return False
        self.held = False
        return bool(self._release(keys=[self.key], args=[self.token]))
