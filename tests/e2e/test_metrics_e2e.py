"""The worker started as the Procfile starts it serves /metrics on METRICS_PORT."""

from __future__ import annotations

from tests.integration.test_metrics import scrape
from tests.ports import free_port


def test_the_worker_serves_metrics_on_metrics_port(start_worker, redis_url, tmp_path) -> None:
    port = free_port()
    worker = start_worker({"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path), "METRICS_PORT": str(port)})
    worker.wait_for(lambda line: line.get("event") == "metrics_serving" and line.get("port") == port)
    got = scrape(port)
    assert 1.0 == got[("railyard_workers_alive", ())]
    assert {"backup", "retention", "migration", "audio"} == {
        dict(labels)["queue"] for name, labels in got if name == "railyard_queue_depth"
    }
