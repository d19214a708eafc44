"""Benchmark what starting the ``railyard`` command costs, against a bare interpreter in the same run.

    python bench/startup_bench.py                    # 20 runs of each, small database of ~5 MB
    python bench/startup_bench.py --repeats 50 --rows 200000

Timed as processes, the way a person or a cron line starts them (wall time, median of the runs):

* ``python -c pass``: the bare interpreter, the floor;
* ``railyard --help``, with an empty environment and with a typical one (DATABASE_URL and
  REDIS_URL set: the output's secret scrubber reads them);
* ``railyard --version``;
* ``railyard backup`` of a small database to a local directory, against ``pg_dump -Fc`` of the
  same database to a file, the baseline a user would otherwise script.

PostgreSQL comes from ``BENCH_DATABASE_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from railyard.core.pgtools import find_tool, server_major  # noqa: E402  (the checkout's own)

BIN = Path(sys.executable).parent
TARGET_OVER_BARE_S = 0.150


def run_s(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_s(argv: list[str], env: dict[str, str], repeats: int) -> float:
    run_s(argv, env)  # warm the page cache once
    return statistics.median(run_s(argv, env) for _ in range(repeats))


def scratch_database(admin_url: str, rows: int) -> str:
    name = f"bench_startup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text, at timestamptz DEFAULT now())")
        conn.execute(
            "INSERT INTO notes (id, body) SELECT g, md5(g::text) || ' note' FROM generate_series(1, %s) g", [rows]
        )
    return url


def drop_database(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50_000, help="rows in the small database (default ~5 MB)")
    args = parser.parse_args()

    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    railyard = str(BIN / "railyard")
    bare = median_s([sys.executable, "-c", "pass"], base, args.repeats)
    print(f"python -c pass                        {bare * 1000:7.1f} ms  (the floor)")
    typical = {**base, "DATABASE_URL": "postgresql://app:s3cret@db.internal:5432/app", "REDIS_URL": "redis://r:6379/0"}
    for label, argv, env in (
        ("railyard --help", [railyard, "--help"], base),
        ("railyard --help (DATABASE_URL set)", [railyard, "--help"], typical),
        ("railyard --version", [railyard, "--version"], base),
    ):
        took = median_s(argv, env, args.repeats)
        over = took - bare
        verdict = "pass" if over <= TARGET_OVER_BARE_S else "MISS"
        print(f"{label:37} {took * 1000:7.1f} ms  +{over * 1000:.0f} ms over the floor (target <= 150 ms: {verdict})")

    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = scratch_database(admin_url, args.rows)
    try:
        with psycopg.connect(url) as conn:
            pg_dump = find_tool("pg_dump", server_major(conn)[0]).path
        repeats = max(3, args.repeats // 4)
        with tempfile.TemporaryDirectory(prefix="railyard-startup-") as tmp:
            dump_file = Path(tmp) / "plain.dump"
            plain = median_s([pg_dump, "-Fc", "-f", str(dump_file), "-d", url], base, repeats)
            size_mb = dump_file.stat().st_size / 1e6
            env = {**base, "DATABASE_URL": url, "BACKUP_STORAGE_URL": str(Path(tmp) / "backups"), "LOG_FORMAT": "json"}
            ours = median_s([railyard, "backup"], env, repeats)
        print(f"pg_dump -Fc to a file ({size_mb:.1f} MB dump)     {plain * 1000:7.1f} ms")
        print(f"railyard backup to a directory        {ours * 1000:7.1f} ms  = {ours / plain:.2f}x pg_dump")
    finally:
        drop_database(admin_url, url)


if __name__ == "__main__":
    main()
