"""Cost of zstd settings on a real pg_dump stream: CPU, wall time, size and extra RSS.

    python bench/zstd_bench.py DUMP_FILE            # a file from pg_dump -Fc -Z0
    python bench/zstd_bench.py DUMP_FILE --gzip     # also gzip -6 (what pg_dump -Fc does)

Each setting runs in a fresh child process, compressing the file in 1 MiB chunks through
``compressobj()`` as the backup job does; the child reports its CPU time and how much
its peak RSS grew over the baseline after loading zstandard. Sizes are compared with the
first row. Use it to choose BACKUP_ZSTD_LEVEL / BACKUP_ZSTD_THREADS and a job size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, zlib, zstandard
path, level, threads, job_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if level == 0:
    comp = zlib.compressobj(6)
elif job_size:
    params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, job_size=job_size)
    comp = zstandard.ZstdCompressor(compression_params=params).compressobj()
else:
    comp = zstandard.ZstdCompressor(level=level, threads=threads).compressobj()
size = 0
t0 = time.perf_counter()
with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
        size += len(comp.compress(chunk))
size += len(comp.flush())
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "size": size,
                  "extra_rss_mb": (usage.ru_maxrss - base) / 1024}))
"""

# (label, level, threads, job_size); level 0 means gzip -6
SETTINGS = [
    ("zstd -3, 2 threads (default)", 3, 2, 0),
    ("zstd -3, 2 threads, 2 MiB jobs", 3, 2, 2 << 20),
    ("zstd -3, 2 threads, 4 MiB jobs", 3, 2, 4 << 20),
    ("zstd -3, 1 thread", 3, 1, 0),
    ("zstd -3, 1 thread, 2 MiB jobs", 3, 1, 2 << 20),
    ("zstd -3, in caller (threads=0)", 3, 0, 0),
    ("zstd -1, 2 threads", 1, 2, 0),
    ("zstd -2, 2 threads", 2, 2, 0),
    ("zstd -4, 2 threads", 4, 2, 0),
    ("zstd -6, 2 threads", 6, 2, 0),
]


def run(path: str, level: int, threads: int, job_size: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, str(level), str(threads), str(job_size)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path, help="a pg_dump -Fc -Z0 file")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; medians are reported")
    parser.add_argument("--gzip", action="store_true", help="also measure zlib level 6 (pg_dump -Fc's default)")
    args = parser.parse_args(argv)
    settings = SETTINGS + ([("gzip -6 (zlib, one thread)", 0, 0, 0)] if args.gzip else [])
    raw = args.dump.stat().st_size
    samples: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in settings}
    for _ in range(args.repeats):  # interleaved, so machine load drifts over all settings alike
        for label, level, threads, job in settings:
            samples[label].append(run(str(args.dump), level, threads, job))

    def med(label: str, key: str) -> float:
        return float(statistics.median(s[key] for s in samples[label]))

    first = settings[0][0]
    print(f"{args.dump}: {raw / 1e6:.0f} MB raw; median of {args.repeats} runs")
    head = f"{'setting':<34} {'wall s':>7} {'cpu s':>6} {'MB/s/cpu':>8} {'size MB':>8} {'x first':>8} {'+RSS MB':>7}"
    print(head)
    print("-" * len(head))
    for label, *_ in settings:
        cpu = med(label, "cpu_s")
        print(
            f"{label:<34} {med(label, 'wall_s'):>7.2f} {cpu:>6.2f} {raw / 1e6 / cpu:>8.0f} "
            f"{med(label, 'size') / 1e6:>8.2f} {med(label, 'size') / med(first, 'size'):>7.3f}x "
            f"{med(label, 'extra_rss_mb'):>7.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
