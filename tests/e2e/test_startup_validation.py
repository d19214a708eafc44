"""Every entry point (worker, scheduler, CLI) validates every setting at start-up, all problems at once."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import child_env, procfile_command, run_cli

pytestmark = pytest.mark.timeout(120)

BROKEN = {
    "BACKUP_ZSTD_LEVEL": "99",
    "BACKUP_ROW_COUNTS": "maybe",
    "BACKUP_CRON": "61 * * * *",
    "REDIS_RECONNECT_TIMEOUT_S": "\uff11\uff12",  # full-width digits
    "DATABASE_URL": "postgresql://app:Sentinel-startup-pw@db:99999/app",
    "RESTORE_TARGET_URL": "postgresql://app:p%zz@db/copy",
}
EXPECTED = [
    "BACKUP_ZSTD_LEVEL=99 is out of range",
    "BACKUP_ROW_COUNTS='maybe' is not one of exact, estimate, off",
    "BACKUP_CRON=",
    "REDIS_RECONNECT_TIMEOUT_S='\uff11\uff12' is not a whole number",
    "DATABASE_URL has port '99999', which is not a port number",
    "RESTORE_TARGET_URL is not a valid PostgreSQL connection string",
]


def check(returncode: int, output: str) -> None:
    assert 2 == returncode, output
    assert [] == [e for e in EXPECTED if e not in output], output
    assert f"({len(EXPECTED)} problems)" in output
    assert "Sentinel-startup-pw" not in output and "p%zz" not in output and "Traceback" not in output


@pytest.mark.parametrize("entry", ["cli", "scheduler", "worker"])
def test_every_entry_point_reports_every_problem_at_once(entry: str) -> None:
    if entry == "cli":
        result = run_cli("backups", "list", env=BROKEN)
    else:
        result = subprocess.run(
            procfile_command(entry), env=child_env(**BROKEN), capture_output=True, text=True, cwd=ROOT, timeout=60
        )
    check(result.returncode, result.stdout + result.stderr)
