"""/metrics scraped over HTTP against a known store and real Redis: the figures `railyard status` reports."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.job import Job
from rq.results import Result

from jobs.backup.catalog import VERIFIED_SUFFIX
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from railyard.ops import metrics
from railyard.ops.status import Status
from tests.manifests import put_backup
from tests.ports import free_port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_series_queues_and_workers_of_a_known_store(
    redis_url: str, redis_conn: redis.Redis, tmp_path: Path, monkeypatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    storage = str(tmp_path / "store")
    store, location = open_store(storage), StorageLocation.parse(storage)
    put_backup(store, location, environment="production", database="app", finished_at=now - timedelta(hours=30))
    fresh = put_backup(store, location, environment="production", database="app", finished_at=now - timedelta(hours=2))
    old = put_backup(store, location, environment="production", database="reports", finished_at=now - timedelta(days=3))
    marker = {"backup_id": fresh.id, "database": "app", "series": "app", "key": fresh.key, "result": "passed"}
    marker["verified_at"] = now.isoformat()
    store.put_bytes(fresh.key + VERIFIED_SUFFIX, json.dumps(marker).encode())
    backup = Queue("backup", connection=redis_conn)
    for _ in range(2):
        backup.enqueue("jobs.diagnostics.ping")
    failed = Queue("audio", connection=redis_conn).enqueue("jobs.diagnostics.ping")
    Queue("audio", connection=redis_conn).remove(failed)  # as a worker takes it
    Result.create_failure(failed, ttl=600, exc_string="Traceback ...\nRuntimeError: boom")
    Queue("audio", connection=redis_conn).failed_job_registry.add(Job.fetch(failed.id, connection=redis_conn))
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/app",
        "BACKUP_STORAGE_URL": storage,
        "ENVIRONMENT": "production",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    metrics.serve(Settings.from_env(env), port, host="127.0.0.1")

    got = scrape(port)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert fresh.finished.timestamp() == value("railyard_backup_last_success_timestamp_seconds", series="app")
    assert (float(fresh.size), 5.0) == (
        value("railyard_backup_size_bytes", series="app"),
        value("railyard_backup_duration_seconds", series="app"),
    )
    assert (0.0, 1.0) == (
        value("railyard_backup_stale", series="app"),
        value("railyard_backup_stale", series="reports"),
    )
    assert (1.0, -1.0) == (
        value("railyard_backup_verification_result", series="app"),
        value("railyard_backup_verification_result", series="reports"),
    )
    assert old.finished.timestamp() == value("railyard_backup_last_success_timestamp_seconds", series="reports")
    assert (2.0, 0.0, 1.0) == (
        value("railyard_queue_depth", queue="backup"),
        value("railyard_queue_depth", queue="audio"),
        value("railyard_queue_failed_jobs", queue="audio"),
    )
    assert 0 <= value("railyard_queue_oldest_job_age_seconds", queue="backup") < 60
    assert (0.0, 0.0, 0.0) == (  # no worker: unhealthy
        value("railyard_workers_alive"),
        value("railyard_healthy"),
        value("railyard_status_read_errors"),
    )


def test_a_snapshot_is_reused_for_the_cache_period() -> None:
    reads: list[int] = []
    clock = [100.0]

    def read() -> Status:
        reads.append(1)
        return Status(generated_at=datetime.now(UTC))

    collector = metrics.StatusCollector(read, cache_s=15, clock=lambda: clock[0])
    for at in (100.0, 105.0, 114.9, 115.0, 120.0):
        clock[0] = at
        list(collector.collect())
    assert 2 == len(reads)
