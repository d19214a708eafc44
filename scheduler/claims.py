"""At most one enqueue per unit of work: a claim per work id, taken before enqueueing.

Whatever fires an entry (its cron, catch-up, ``railyard schedule run``, a second
scheduler) first claims the work id of the current period with one atomic Redis script.
Only the claimant enqueues; everyone else is told the work is already done. A claim
left ``pending`` by a process that died between claiming and enqueueing can be taken
over once it is older than ``STALE_CLAIM_S``, so a crash does not cost a period's work.
"""

from __future__ import annotations

from redis import Redis

CLAIM_PREFIX = "railyard:schedule:claim:"
STALE_CLAIM_S = 60

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local since = string.match(current, '^pending:(.+)$')
  if not since or tonumber(since) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def claim_key(work_id: str) -> str:
    return CLAIM_PREFIX + work_id


class Claims:
    def __init__(self, connection: Redis):
        self.connection = connection
        self._claim = connection.register_script(_CLAIM)
        self._release = connection.register_script(_RELEASE)

    def claim(self, work_id: str, *, now: float, ttl_s: int) -> str | None:
        """Claim ``work_id`` for ``ttl_s`` seconds; the claim's token, or None if it is taken."""
        token = f"pending:{now:.6f}"
        taken = self._claim(keys=[claim_key(work_id)], args=[token, now - STALE_CLAIM_S, max(1, int(ttl_s))])
        return token if taken else None

    def confirm(self, work_id: str) -> None:
        """Mark the claimed work as enqueued: it can no longer be taken over."""
        self.connection.set(claim_key(work_id), "enqueued", xx=True, keepttl=True)

    def release(self, work_id: str, token: str) -> None:
        """Give up a claim whose enqueue failed, so the next trigger may try again."""
        self._release(keys=[claim_key(work_id)], args=[token])

    def state(self, work_id: str) -> str | None:
        value = self.connection.get(claim_key(work_id))
        return None if value is None else _text(value).split(":", 1)[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
