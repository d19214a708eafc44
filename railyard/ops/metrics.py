"""Prometheus metrics: what ``railyard status`` reports, as gauges a scraper can alert on.

The figures come from :func:`railyard.ops.status.collect`, the very function behind
``railyard status``: per series the newest backup's finish time, size, duration, staleness
and verification; per queue its depth, oldest waiting job and failed jobs; the workers
alive. A snapshot is reused for ``CACHE_S`` seconds, so scrapes from several Prometheus
replicas (or a short scrape interval) cost Redis and the store one read per interval
however often they come. Served by the worker on ``METRICS_PORT``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from railyard.core.alert_config import AlertConfig
from railyard.core.settings import Settings
from railyard.ops.status import Status, collect
from railyard.ops.status_config import StatusConfig

CACHE_S = 15.0
VERIFICATION_VALUES = {"passed": 1.0, "failed": 0.0}  # not verified: -1


class StatusCollector(Collector):
    """Gauges from one (cached) ``railyard status`` snapshot per scrape."""

    def __init__(
        self,
        read: Callable[[], Status],
        *,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: tuple[float, Status, float] | None = None  # (taken at, status, seconds it took)

    def snapshot(self) -> tuple[Status, float]:
        with self._lock:
            now = self._clock()
            if self._snapshot is None or now - self._snapshot[0] >= self._cache_s:
                started = time.perf_counter()
                status = self._read()
                self._snapshot = (now, status, time.perf_counter() - started)
            return self._snapshot[1], self._snapshot[2]

    def collect(self) -> Iterator[Any]:
        status, took_s = self.snapshot()
        yield from _backup_metrics(status)
        yield from _queue_metrics(status)
        healthy = GaugeMetricFamily("railyard_healthy", "1 when railyard status finds no problem, else 0")
        healthy.add_metric([], 0.0 if status.problems() else 1.0)
        yield healthy
        errors = GaugeMetricFamily(
            "railyard_status_read_errors", "Parts of the status that could not be read (Redis, storage)"
        )
        errors.add_metric([], float(len(status.errors)))
        yield errors
        duration = GaugeMetricFamily(
            "railyard_status_read_duration_seconds", "How long reading the status snapshot behind these figures took"
        )
        duration.add_metric([], took_s)
        yield duration


def _backup_metrics(status: Status) -> Iterator[GaugeMetricFamily]:
    labels = ["series"]
    last = GaugeMetricFamily(
        "railyard_backup_last_success_timestamp_seconds", "When the newest backup of the series finished", labels=labels
    )
    size = GaugeMetricFamily("railyard_backup_size_bytes", "Stored size of the newest backup", labels=labels)
    duration = GaugeMetricFamily("railyard_backup_duration_seconds", "How long the newest backup took", labels=labels)
    stale = GaugeMetricFamily(
        "railyard_backup_stale",
        "1 when the newest backup is older than BACKUP_STALE_AFTER, or there is none",
        labels=labels,
    )
    verified = GaugeMetricFamily(
        "railyard_backup_verification_result",
        "Verification of the newest backup: 1 passed, 0 failed, -1 not verified",
        labels=labels,
    )
    for item in status.backups:
        series = [item.database]
        stale.add_metric(series, 1.0 if item.stale else 0.0)
        verified.add_metric(series, VERIFICATION_VALUES.get(str(item.as_dict()["verified"]), -1.0))
        if item.newest is not None:
            last.add_metric(series, item.newest.finished.timestamp())
            size.add_metric(series, float(item.newest.size))
            duration.add_metric(series, float(item.newest.duration_s))
    yield from (last, size, duration, stale, verified)


def _queue_metrics(status: Status) -> Iterator[GaugeMetricFamily]:
    labels = ["queue"]
    depth = GaugeMetricFamily("railyard_queue_depth", "Jobs waiting in the queue", labels=labels)
    oldest = GaugeMetricFamily(
        "railyard_queue_oldest_job_age_seconds", "Age of the oldest waiting job (0 when none waits)", labels=labels
    )
    running = GaugeMetricFamily("railyard_queue_started_jobs", "Jobs running", labels=labels)
    failed = GaugeMetricFamily("railyard_queue_failed_jobs", "Jobs in the failed registry", labels=labels)
    for q in status.queues:
        name = [q["name"]]
        depth.add_metric(name, float(q["depth"]))
        oldest.add_metric(name, float(q["oldest_waiting_s"] or 0.0))
        running.add_metric(name, float(q["started"]))
        failed.add_metric(name, float(q["failed"]))
    workers = GaugeMetricFamily("railyard_workers_alive", "Workers registered with a live heartbeat")
    workers.add_metric([], float(len([w for w in status.workers if w.get("alive")])))
    yield from (depth, oldest, running, failed, workers)


def status_reader(settings: Settings) -> Callable[[], Status]:
    """Read the status the way ``railyard status`` does, with this process's settings."""
    alert_config, checks = AlertConfig.from_env(), StatusConfig.from_env()
    return lambda: collect(settings, alert_config, datetime.now(UTC), checks)


def registry_for(settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status_reader(settings)))
    return registry


def serve(settings: Settings, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 (a container's metrics port)
    """Serve ``/metrics`` on ``port`` from a daemon thread of this process."""
    start_http_server(port, addr=host, registry=registry_for(settings))
