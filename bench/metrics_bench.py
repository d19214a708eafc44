"""Benchmark a ``/metrics`` scrape as the number of backups in the store grows.

    python bench/metrics_bench.py                          # 10, 100, 1000 and 3000 backups
    python bench/metrics_bench.py --counts 10,100 --repeats 3

For each count, a local store is filled with that many backups (manifest and a small
dump) spread over two series, with a verification marker for each, and a scrape of
``/metrics`` over HTTP from the worker's metrics server (real Redis, ``REDIS_URL`` or
redis://127.0.0.1:6379/15) is timed twice:

* cold: the first scrape, which reads the status snapshot (``railyard status``'s own
  ``collect``) from Redis and the store;
* cached: the scrapes that follow within ``railyard.ops.metrics.CACHE_S``, which reuse it.

Ratios are against the smallest count measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.backup.catalog import VERIFIED_SUFFIX  # noqa: E402  (the checkout, not an installed copy)
from railyard.core.settings import Settings  # noqa: E402
from railyard.core.storage import StorageLocation, open_store  # noqa: E402
from railyard.ops import metrics  # noqa: E402
from tests.manifests import put_backup  # noqa: E402
from tests.ports import free_port  # noqa: E402


def fill(storage: str, count: int) -> None:
    store, location = open_store(storage), StorageLocation.parse(storage)
    now = datetime.now(UTC)
    for i in range(count):
        series = ("app", "reports")[i % 2]
        manifest = put_backup(
            store, location, environment="bench", database=series, finished_at=now - timedelta(hours=i + 1)
        )
        marker = {"backup_id": manifest.id, "series": series, "database": series, "key": manifest.key}
        marker |= {"result": "passed", "verified_at": now.isoformat()}
        store.put_bytes(manifest.key + VERIFIED_SUFFIX, json.dumps(marker).encode())


def scrape_s(port: int) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as response:
        response.read()
    return time.perf_counter() - started


def measure(count: int, redis_url: str, cached_scrapes: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        storage = str(Path(tmp) / "store")
        fill(storage, count)
        env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": storage, "ENVIRONMENT": "bench"}
        env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/app"
        os.environ.update(env)
        port = free_port()
        metrics.serve(Settings.from_env(env), port, host="127.0.0.1")
        cold = scrape_s(port)
        cached = statistics.median(scrape_s(port) for _ in range(cached_scrapes))
        return cold, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10,100,1000,3000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cached-scrapes", type=int, default=20)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    counts = [int(c) for c in args.counts.split(",")]
    measure(2, redis_url, 2)  # warm up imports and connections, so the first count is not charged for them
    rows = []
    for count in counts:
        runs = [measure(count, redis_url, args.cached_scrapes) for _ in range(args.repeats)]
        rows.append((count, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)))
    base_cold, base_cached = rows[0][1], rows[0][2]
    print(f"{'backups':>8} {'cold scrape':>12} {'x base':>7} {'cached scrape':>14} {'x base':>7}")
    for count, cold, cached in rows:
        cold_ms, cached_ms = cold * 1000, cached * 1000
        print(
            f"{count:>8} {cold_ms:>10.1f}ms {cold / base_cold:>7.1f} {cached_ms:>12.2f}ms {cached / base_cached:>7.1f}"
        )


if __name__ == "__main__":
    main()
