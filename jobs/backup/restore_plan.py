"""How a restore runs: parallel (``pg_restore --jobs``) or in one transaction. A pure choice.

A parallel restore loads tables and builds indexes on several connections at once, which
is what makes a large database quick to bring back; it needs the archive as a file (so
room on local disk for it, decompressed) and an empty target, since it cannot run in one
transaction: on failure Railyard drops what it created instead of rolling back. The
single-transaction path streams with nothing on disk, into any target (``--clean``), and
for a small database is as fast. The rules, in order:

1. ``--jobs 1`` (or ``RESTORE_JOBS=1``): one transaction.
2. A pg_restore that must go through its script and psql (17+ into a server before 17):
   one transaction, the only way that path runs.
3. A target that already holds objects: one transaction (replaced with ``--clean``).
4. An archive smaller than ``RESTORE_PARALLEL_MIN_MB`` (default 256) once decompressed:
   one transaction; a few connections' start-up would cost more than they save.
5. Less free space in the temporary directory than the decompressed archive plus
   ``SPOOL_MARGIN_BYTES``: one transaction, streaming.
6. Otherwise: parallel, with ``jobs`` connections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from railyard.core.envparse import whole_number
from railyard.core.errors import ConfigError
from railyard.core.storage.base import MiB

DEFAULT_PARALLEL_MIN_MB = 256
SPOOL_MARGIN_BYTES = 256 * MiB  # free space left for everything else on the temporary directory's disk
MAX_JOBS = 64


@dataclass(frozen=True)
class RestoreConfig:
    """From RESTORE_JOBS and RESTORE_PARALLEL_MIN_MB; ``railyard restore --jobs`` overrides the first."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    parallel_min_bytes: int = DEFAULT_PARALLEL_MIN_MB * MiB

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, jobs: int | None = None) -> RestoreConfig:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        env_jobs = whole_number(env, "RESTORE_JOBS", os.cpu_count() or 1, 1, MAX_JOBS, problems)
        min_mb = whole_number(env, "RESTORE_PARALLEL_MIN_MB", DEFAULT_PARALLEL_MIN_MB, 0, 1024 * 1024, problems)
        if jobs is not None and not 1 <= jobs <= MAX_JOBS:
            problems.append(f"--jobs {jobs} is not between 1 and {MAX_JOBS}")
        if problems:
            raise ConfigError(problems)
        return cls(jobs=jobs or env_jobs, parallel_min_bytes=min_mb * MiB)


@dataclass(frozen=True)
class RestorePlan:
    parallel: bool
    jobs: int
    reason: str  # why this path, for the log


def choose(
    tuning: RestoreConfig, *, archive_bytes: int, free_disk_bytes: int, target_empty: bool, via_script: bool
) -> RestorePlan:
    """The restore path for an archive of ``archive_bytes`` (decompressed) into a target."""

    def single(reason: str) -> RestorePlan:
        return RestorePlan(False, 1, reason)

    if tuning.jobs <= 1:
        return single("one job asked for")
    if via_script:
        return single("pg_restore goes through its script and psql for this server version")
    if not target_empty:
        return single("the target holds objects already: replaced in one transaction")
    if archive_bytes < tuning.parallel_min_bytes:
        return single(f"the archive is smaller than {tuning.parallel_min_bytes // MiB} MiB")
    if free_disk_bytes < archive_bytes + SPOOL_MARGIN_BYTES:
        return single(f"{free_disk_bytes // MiB} MiB free on the temporary directory's disk is too little")
    return RestorePlan(True, tuning.jobs, f"{tuning.jobs} jobs into an empty target")
