"""Which restore path is chosen: a pure function of the archive, the disk, the target and the tools."""

from __future__ import annotations

import pytest

from jobs.backup.restore_plan import SPOOL_MARGIN_BYTES, RestoreConfig, choose
from railyard.core.errors import ConfigError
from railyard.core.storage.base import MiB

GB = 1024 * MiB
TUNING = RestoreConfig(jobs=4, parallel_min_bytes=256 * MiB)


@pytest.mark.parametrize(
    ("tuning", "archive", "free", "empty", "script", "expected"),
    [
        (TUNING, 2 * GB, 100 * GB, True, False, (True, 4)),
        (RestoreConfig(jobs=1), 2 * GB, 100 * GB, True, False, (False, 1)),
        (TUNING, 2 * GB, 100 * GB, True, True, (False, 1)),  # pg_restore 17+ into 15/16: script and psql
        (TUNING, 2 * GB, 100 * GB, False, False, (False, 1)),  # a target with objects: --clean in one transaction
        (TUNING, 256 * MiB - 1, 100 * GB, True, False, (False, 1)),  # small
        (TUNING, 256 * MiB, 100 * GB, True, False, (True, 4)),
        (TUNING, 2 * GB, 2 * GB + SPOOL_MARGIN_BYTES - 1, True, False, (False, 1)),  # no room to spool
        (TUNING, 2 * GB, 2 * GB + SPOOL_MARGIN_BYTES, True, False, (True, 4)),
        (RestoreConfig(jobs=2, parallel_min_bytes=0), 1, 100 * GB, True, False, (True, 2)),
    ],
)
def test_restore_path(
    tuning: RestoreConfig, archive: int, free: int, empty: bool, script: bool, expected: tuple[bool, int]
) -> None:
    plan = choose(tuning, archive_bytes=archive, free_disk_bytes=free, target_empty=empty, via_script=script)
    assert expected == (plan.parallel, plan.jobs)
    assert plan.reason


def test_tuning_from_env() -> None:
    assert RestoreConfig(jobs=3, parallel_min_bytes=0) == RestoreConfig.from_env(
        {"RESTORE_JOBS": "3", "RESTORE_PARALLEL_MIN_MB": "0"}
    )
    assert 5 == RestoreConfig.from_env({"RESTORE_JOBS": "3"}, jobs=5).jobs  # --jobs wins


def test_bad_tuning_names_each_problem() -> None:
    with pytest.raises(ConfigError) as info:
        RestoreConfig.from_env({"RESTORE_JOBS": "0", "RESTORE_PARALLEL_MIN_MB": "lots"})
    message = str(info.value)
    assert "RESTORE_JOBS=0 is out of range" in message
    assert "RESTORE_PARALLEL_MIN_MB='lots' is not a whole number" in message
