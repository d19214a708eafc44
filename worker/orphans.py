"""Jobs taken off a queue by a worker that stopped before starting them are put back.

rq's worker pops a job id off the queue list (BLPOP) and only afterwards records the job in
the StartedJobRegistry. A worker killed in between, or stopped by a deploy's SIGTERM
while it is idle-but-just-dequeued (rq raises StopRequested whenever the worker is not
yet busy), leaves a job whose status still says ``queued`` but that no queue list and no
registry holds: nothing would ever run it, and rq's own cleanup never looks at it.

``rescue_orphans`` finds such jobs on Railyard's queues and pushes them back to the front
of their queue. A job counts as orphaned only when it looked orphaned on an earlier sweep
at least ``grace_s`` ago and still does (a healthy worker is between BLPOP and the
started registry for milliseconds); the final check and the push are one atomic script,
so a job a worker has meanwhile taken up is left alone. Runs inside the worker's
maintenance, once per interval across all workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

import structlog
from redis import Redis
from rq.job import Job
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.utils import as_text

log = structlog.get_logger()

SEEN_KEY = "railyard:orphans:seen"  # hash: job id -> when it first looked orphaned (epoch seconds)
LOCK_KEY = "railyard:orphans:lock"
SCAN_BATCH = 500

# KEYS: job hash, queue list, intermediate list. ARGV: job id. Pushes the job back only if
# it is still queued and still in neither list.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) then return 0 end
if redis.call('LPOS', KEYS[3], ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
"""


def _queued_jobs(conn: Redis, queue_names: set[str]) -> Iterator[tuple[str, str]]:
    """(job id, queue) of every job hash whose status is ``queued`` on one of ``queue_names``."""
    prefix = Job.redis_job_namespace_prefix
    batch: list[bytes] = []

    def flush() -> Iterator[tuple[str, str]]:
        with conn.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, "status", "origin")
            fields = pipe.execute()
        for key, (status, origin) in zip(batch, fields, strict=True):
            if status == b"queued" and origin is not None and origin.decode() in queue_names:
                yield key.decode()[len(prefix) :], origin.decode()
        batch.clear()

    for key in conn.scan_iter(match=f"{prefix}*", count=SCAN_BATCH, _type="hash"):
        if b":" in key[len(prefix) :]:
            continue  # not a job hash (rq keeps other keys under the prefix)
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            yield from flush()
    if batch:
        yield from flush()


def find_orphans(conn: Redis, queue_names: Iterable[str]) -> dict[str, str]:
    """Job id -> queue of the jobs that look orphaned right now."""
    names = set(queue_names)
    waiting = {name: {as_text(i) for i in conn.lrange(Queue(name, connection=conn).key, 0, -1)} for name in names}
    started = {name: set(StartedJobRegistry(name, connection=conn).get_job_ids(cleanup=False)) for name in names}
    return {
        job_id: origin
        for job_id, origin in _queued_jobs(conn, names)
        if job_id not in waiting[origin] and job_id not in started[origin]
    }


def rescue_orphans(conn: Redis, queue_names: Iterable[str], *, now: datetime, grace_s: int) -> list[str]:
    """Push back the jobs that have looked orphaned for ``grace_s``; return their ids."""
    orphans = find_orphans(conn, queue_names)
    seen = {as_text(k): float(v) for k, v in conn.hgetall(SEEN_KEY).items()}
    stamp = now.timestamp()
    rescued = []
    requeue = conn.register_script(_REQUEUE)
    for job_id, origin in orphans.items():
        first_seen = seen.get(job_id)
        if first_seen is None:
            conn.hset(SEEN_KEY, job_id, stamp)
            continue
        if stamp - first_seen < grace_s:
            continue
        queue = Queue(origin, connection=conn)
        if requeue(keys=[Job.key_for(job_id), queue.key, queue.intermediate_queue_key], args=[job_id]):
            rescued.append(job_id)
            log.warning("orphaned_job_requeued", job_id=job_id, queue=origin, orphaned_s=int(stamp - first_seen))
    gone = [job_id for job_id in seen if job_id not in orphans or job_id in rescued]
    if gone:
        conn.hdel(SEEN_KEY, *gone)
    return rescued


def sweep_once_per_interval(
    conn: Redis, queue_names: Iterable[str], *, now: datetime, grace_s: int, interval_s: int
) -> list[str]:
    """``rescue_orphans`` by whichever worker takes the sweep's lock first this interval."""
    if not conn.set(LOCK_KEY, now.isoformat(), nx=True, ex=max(1, interval_s - 1)):
        return []
    return rescue_orphans(conn, queue_names, now=now, grace_s=grace_s)
