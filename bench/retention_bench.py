"""Benchmark ``railyard retention run`` (batched deletion) against a single ``DELETE``.

    python bench/retention_bench.py                  # 1 M expired rows of 2 M
    python bench/retention_bench.py --rows 200000    # a tenth of that, for a quick look

An indexed table of ``--rows`` rows is built, half of them (``--expired-fraction``)
older than the policy's maximum age. An application workload runs throughout: paced
INSERTs of new rows and UPDATEs of random existing rows (expired ones included), on
``--writers`` connections at ``--rate`` operations per second each. Three phases, in one
run on the same machine:

* idle: the workload alone, the baseline;
* batched: the workload while Railyard's purge deletes the expired rows with its
  default batch size and pause (or ``--batch-size`` / ``--pause-s``);
* single DELETE: the table rebuilt, the workload while one ``DELETE ... WHERE col < cutoff``
  deletes the same rows.

Reported: rows deleted per second, and the workload's p50 / p99 / max latency in each
phase, measured from each operation's scheduled start (so an operation stuck behind a
lock also delays, and is charged for, the ones scheduled after it), plus the number of
operations that waited longer than the purge's lock timeout. Ratios are against the idle
phase and against the single DELETE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.retention import purge  # noqa: E402  (the checkout, not an installed copy)
from jobs.retention.purge_config import PurgePolicy  # noqa: E402
from railyard.core.durations import Duration  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = datetime.now(UTC)
MAX_AGE = Duration(days=30)
TARGET_ROWS_PER_S = 50_000
TARGET_P99_VS_IDLE = 2.0


@dataclass
class Samples:
    """Workload latencies (seconds) keyed by the wall-clock time the operation was scheduled."""

    points: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, scheduled: float, latency: float) -> None:
        with self.lock:
            self.points.append((scheduled, latency))

    def window(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [lat for at, lat in self.points if start <= at < end]


class Workload:
    """Paced writers: each alternates an INSERT of a new row and an UPDATE of a random row."""

    def __init__(self, url: str, writers: int, rate: float, max_id: int):
        self.url, self.writers, self.interval, self.max_id = url, writers, 1.0 / rate, max_id
        self.samples = Samples()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(writers)]

    def __enter__(self) -> Workload:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # connections open, caches warm
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _run(self, number: int) -> None:
        rng = random.Random(number)
        with psycopg.connect(self.url, autocommit=True) as conn:
            scheduled = time.monotonic()
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    if n % 2:
                        conn.execute(
                            "INSERT INTO events (created_at, user_id, payload) VALUES (now(), %s, %s)",
                            [rng.randrange(100_000), "x" * 80],
                        )
                    else:
                        conn.execute(
                            "UPDATE events SET counter = counter + 1 WHERE id = %s", [rng.randrange(1, self.max_id)]
                        )
                except psycopg.Error:
                    self.samples.errors += 1
                self.samples.add(scheduled, time.monotonic() - scheduled)
                scheduled += self.interval
                delay = scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


def build_table(url: str, rows: int, expired: int) -> None:
    """``expired`` rows older than the cut-off first (as an old table has them), then the rest."""
    cutoff = MAX_AGE.before(NOW)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute(
            "CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, "
            "user_id int NOT NULL, counter int NOT NULL DEFAULT 0, payload text NOT NULL)"
        )
        for lo, hi, start, span in ((1, expired, cutoff - timedelta(days=365), 364), (1, rows - expired, cutoff, 29)):
            step = 200_000
            for first in range(lo, hi + 1, step):
                conn.execute(
                    "INSERT INTO events (created_at, user_id, payload) "
                    "SELECT %s + (g::float8 / %s) * make_interval(days => %s), g %% 100000, "
                    "md5(g::text) || md5(g::text) FROM generate_series(%s, %s) g",
                    [start + timedelta(seconds=1), hi, span, first, min(first + step - 1, hi)],
                )
        conn.execute("CREATE INDEX events_created_at ON events (created_at)")
        conn.execute("VACUUM (FREEZE, ANALYZE) events")
        conn.execute("CHECKPOINT")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float], lock_timeout_s: float) -> dict[str, Any]:
    return {
        "ops": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "waits_over_lock_timeout": sum(1 for x in latencies if x > lock_timeout_s),
    }


def expired_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE created_at < %s", [MAX_AGE.before(NOW)]).fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=os.environ.get("RAILYARD_BENCH_PG_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the table (default 2 M)")
    parser.add_argument("--expired-fraction", type=float, default=0.5, help="share of rows past max age")
    parser.add_argument("--writers", type=int, default=2, help="workload connections")
    parser.add_argument("--rate", type=float, default=100.0, help="operations per second per writer")
    parser.add_argument("--idle-s", type=float, default=15.0, help="length of the idle baseline")
    parser.add_argument("--batch-size", type=int, default=None, help="override the default batch size")
    parser.add_argument("--pause-s", type=float, default=None, help="override the default pause")
    parser.add_argument("--repeats", type=int, default=1, help="whole runs; medians are reported")
    args = parser.parse_args()

    expired = int(args.rows * args.expired_fraction)
    tuning = {k: v for k, v in (("batch_size", args.batch_size), ("pause_s", args.pause_s)) if v is not None}
    policy = PurgePolicy(table="events", column="created_at", max_age=MAX_AGE, **tuning)
    dbname = f"railyard_bench_retention_{uuid.uuid4().hex[:8]}"
    base, _, _ = args.admin_url.rpartition("/")
    url = f"{base}/{dbname}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        runs = [run(url, args, policy, expired) for _ in range(args.repeats)]
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
    report(runs, args, policy, expired)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each phase's numbers, as the (low) median over the runs."""
    merged: dict[str, Any] = {}
    for phase in ("idle", "batched", "single_delete"):
        keys = runs[0][phase].keys()
        merged[phase] = {k: statistics.median_low(r[phase][k] for r in runs) for k in keys}
    merged["workload_errors"] = sum(r["workload_errors"] for r in runs)
    return merged


def run(url: str, args: argparse.Namespace, policy: PurgePolicy, expired: int) -> dict[str, Any]:
    """Idle windows before and after each cleanup are pooled, so that load from other processes spreads evenly."""
    lock_s = policy.lock_timeout_s
    idle: list[float] = []

    print(f"building {args.rows:,} rows ({expired:,} expired) ...", file=sys.stderr)
    build_table(url, args.rows, expired)
    with Workload(url, args.writers, args.rate, args.rows) as load:
        idle_start = time.monotonic()
        time.sleep(args.idle_s)
        print("batched purge ...", file=sys.stderr)
        start = time.monotonic()
        with purge.connect(url) as conn:
            outcome = purge.purge_expired_rows(conn, [policy], now=NOW)
        end = time.monotonic()
        time.sleep(args.idle_s)
        idle_end = time.monotonic()
    # Only now have operations stuck in the window finished and been recorded.
    idle += load.samples.window(idle_start, start) + load.samples.window(end + 1.0, idle_end)
    batched = summary(load.samples.window(start, end), lock_s)
    batched.update(
        rows=outcome.results[0].rows,
        batches=outcome.results[0].batches,
        duration_s=round(end - start, 2),
        rows_per_s=round(outcome.results[0].rows / (end - start)),
    )
    errors = load.samples.errors
    # Rows a writer held at the last pass are skipped, by design, and left for the next run.
    batched["left_for_next_run"] = expired_count(url)
    assert batched["left_for_next_run"] <= args.writers, "the purge left expired rows behind"

    print("rebuilding for the single DELETE ...", file=sys.stderr)
    build_table(url, args.rows, expired)
    with Workload(url, args.writers, args.rate, args.rows) as load:
        idle_start = time.monotonic()
        time.sleep(args.idle_s)
        print("single DELETE ...", file=sys.stderr)
        start = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            deleted = conn.execute("DELETE FROM events WHERE created_at < %s", [MAX_AGE.before(NOW)]).rowcount
        end = time.monotonic()
        time.sleep(2.0)
    idle += load.samples.window(idle_start, start)
    single = summary(load.samples.window(start, end), lock_s)
    single.update(rows=deleted, duration_s=round(end - start, 2), rows_per_s=round(deleted / (end - start)))
    return {
        "idle": summary(idle, lock_s),
        "batched": batched,
        "single_delete": single,
        "workload_errors": errors + load.samples.errors,
    }


def report(runs: list[dict[str, Any]], args: argparse.Namespace, policy: PurgePolicy, expired: int) -> None:
    results = medians(runs)
    idle, batched, single = results["idle"], results["batched"], results["single_delete"]
    ratios = {
        "batched_rows_per_s_vs_target": round(batched["rows_per_s"] / TARGET_ROWS_PER_S, 2),
        "batched_p99_vs_idle": round(batched["p99_ms"] / idle["p99_ms"], 2),
        "single_delete_p99_vs_idle": round(single["p99_ms"] / idle["p99_ms"], 2),
        "batched_rows_per_s_vs_single_delete": round(batched["rows_per_s"] / single["rows_per_s"], 2),
        "batched_max_wait_vs_lock_timeout": round(batched["max_ms"] / 1000 / policy.lock_timeout_s, 2),
    }
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "rows": args.rows,
        "expired": expired,
        "workload": f"{args.writers} writers x {args.rate:g} ops/s (INSERT / UPDATE alternating)",
        "policy": {"batch_size": policy.batch_size, "pause_s": policy.pause_s, "lock_timeout_s": policy.lock_timeout_s},
        "repeats": len(runs),
        **results,
        "ratios": ratios,
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    for number, r in enumerate(runs, start=1):
        print(
            f"run {number}: batched {r['batched']['rows_per_s']:,} rows/s, p99 idle {r['idle']['p99_ms']} ms, "
            f"batched {r['batched']['p99_ms']} ms, single DELETE {r['single_delete']['p99_ms']} ms"
        )
    title = "median" if len(runs) > 1 else "phase"
    print(f"\n{title:<14}{'rows/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'> lock t/o':>12}")
    for name, phase in (("idle", idle), ("batched", batched), ("single DELETE", single)):
        rate = f"{phase['rows_per_s']:,}" if "rows_per_s" in phase else "-"
        print(
            f"{name:<14}{rate:>10}{phase['p50_ms']:>10}{phase['p99_ms']:>10}{phase['max_ms']:>10}"
            f"{phase['waits_over_lock_timeout']:>12}"
        )
    verdict = (
        batched["rows_per_s"] >= TARGET_ROWS_PER_S
        and ratios["batched_p99_vs_idle"] <= TARGET_P99_VS_IDLE
        and batched["waits_over_lock_timeout"] == 0
    )
    print(
        f"\nbatched: {batched['rows_per_s']:,} rows/s (target >= {TARGET_ROWS_PER_S:,}), "
        f"p99 {ratios['batched_p99_vs_idle']}x idle (target <= {TARGET_P99_VS_IDLE}x), "
        f"{batched['waits_over_lock_timeout']} waits over the {policy.lock_timeout_s:g} s lock timeout (target 0); "
        f"single DELETE p99 {ratios['single_delete_p99_vs_idle']}x idle -> {'PASS' if verdict else 'MISS'}"
    )
    outdir = ROOT / "bench" / "out"
    outdir.mkdir(exist_ok=True)
    (outdir / f"retention-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
