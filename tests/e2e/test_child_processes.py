"""A work horse killed mid-backup takes its pg_dump, and everything pg_dump started, with it."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from railyard.core.pgtools import find_tool
from tests.e2e.conftest import enqueue_plain

pytestmark = pytest.mark.timeout(120)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_killing_the_work_horse_ends_pg_dump_and_its_children(start_worker, redis_url, database_url, tmp_path) -> None:
    pids = tmp_path / "pids"
    real = find_tool("pg_dump", 15).path
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pg_dump"
    # pg_dump as a shell with a grandchild: the shell's pid, then the grandchild's, then it waits.
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec {real} --version\n'
        f"echo $$ >> {pids}; sleep 60 & echo $! >> {pids}; wait\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BACKUP_STORAGE_URL": str(tmp_path / "store"),
        "PG_BIN_DIR": str(bin_dir),
    }
    start_worker(env)
    enqueue_plain(redis_url, "backup", "jobs.backup.run_backup")
    deadline = time.monotonic() + 60
    while len(pids.read_text().split() if pids.exists() else []) < 2:
        assert time.monotonic() < deadline, "pg_dump never started"
        time.sleep(0.05)
    shell, grandchild = (int(p) for p in pids.read_text().split())
    guard = parent_of(shell)
    horse = parent_of(guard)
    assert os.getpgid(shell) != os.getpgid(horse)  # a process group of its own

    os.kill(horse, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(shell) or alive(grandchild):
        assert time.monotonic() < deadline, f"still running: {[p for p in (shell, grandchild) if alive(p)]}"
        time.sleep(0.05)
