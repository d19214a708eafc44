"""CPU cost of reading a dump stream for its row counts, against the other per-byte work of a backup.

    python bench/archive_reader_bench.py DUMP_FILE      # a file from pg_dump -Fc -Z0 | cat > DUMP_FILE

The file is read in 1 MiB chunks, as the backup job reads pg_dump's output, and given to
``jobs.backup.dump_archive.ArchiveReader``, to sha256 and to zstd level 3 (one thread), each
alone and timed by process CPU time; the reader's cost is printed as a ratio of the other
two in the same run. Median of ``--repeats`` runs. (pg_dump writes to a pipe in backups;
write the file through ``| cat`` so that it has the same layout.)
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.backup.dump_archive import ArchiveReader

MB = 1000**2


def cpu_s(chunks: list[bytes], work: Callable[[list[bytes]], object]) -> float:
    t0 = time.process_time()
    work(chunks)
    return time.process_time() - t0


def read_counts(chunks: list[bytes]) -> dict[str, int]:
    reader = ArchiveReader()
    for chunk in chunks:
        reader.feed(chunk)
    return reader.finish().table_counts()


def sha256(chunks: list[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def zstd3(chunks: list[bytes]) -> int:
    comp = zstandard.ZstdCompressor(level=3).compressobj()
    return sum(len(comp.compress(chunk)) for chunk in chunks) + len(comp.flush())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with args.dump.open("rb") as f:
        chunks = list(iter(lambda: f.read(1 << 20), b""))
    size = sum(map(len, chunks))
    counts = read_counts(chunks)
    rows = sum(counts.values())
    times = {
        name: statistics.median(cpu_s(chunks, work) for _ in range(args.repeats))
        for name, work in (("archive reader", read_counts), ("sha256", sha256), ("zstd -3, 1 thread", zstd3))
    }
    print(f"{args.dump.name}: {size / MB:.0f} MB, {len(counts)} tables, {rows} rows; CPU s, median of {args.repeats}")
    for name, t in times.items():
        print(f"{name:<20} {t:>7.3f} s  {t / (size / 1e9):>6.2f} s/GB")
    reader = times["archive reader"]
    print(f"archive reader / sha256: {reader / times['sha256']:.2f}x")
    print(f"archive reader / zstd -3: {reader / times['zstd -3, 1 thread']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
