"""Registry-only execution covers rq callbacks and argument types: a job whose on_success, on_failure or on_stopped
names anything not registered for callbacks, or whose arguments do not fit the registry, is refused,
and neither the job nor the callback runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from rq import Callback, Queue
from rq.job import JobStatus

from railyard.core.serializer import rq_serializer
from tests.e2e.test_backup_e2e import wait_finished

pytestmark = pytest.mark.timeout(120)

UNREGISTERED = ("tests.callback_probe.touch", "builtins.print", "os.system")


def test_unregistered_callbacks_are_refused_and_nothing_runs(
    start_worker, redis_url: str, serializer: str, tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("backup", connection=conn, serializer=rq_serializer(serializer))  # type: ignore[arg-type]
    refused = [
        queue.enqueue("jobs.diagnostics.ping", **{hook: Callback(name)})
        for hook in ("on_success", "on_failure", "on_stopped")
        for name in UNREGISTERED
    ]
    allowed = queue.enqueue("jobs.diagnostics.ping", on_success=Callback("jobs.diagnostics.log_outcome"))
    worker = start_worker({"REDIS_URL": redis_url, "RAILYARD_SERIALIZER": serializer, "CALLBACK_PROBE_DIR": str(probe)})
    for job in refused:
        done = wait_finished(conn, job.id)
        assert JobStatus.FAILED == done.get_status()
        reason = done.latest_result().exc_string
        assert reason.startswith("refused: the job names callbacks that are not registered for callbacks"), reason
    assert JobStatus.FINISHED == wait_finished(conn, allowed.id).get_status()
    worker.wait_for(lambda line: line.get("event") == "job_callback" and line.get("callback_job_id") == allowed.id)
    assert [] == list(probe.iterdir())  # the probe callback never ran
    ran = [line.get("job_id") for line in worker.lines() if line.get("event") == "ping_started"]
    assert [allowed.id] == ran  # and neither did any refused job
    conn.close()


def test_arguments_of_the_wrong_type_are_refused_before_the_job_runs(
    start_worker, redis_url: str, serializer: str, tmp_path: Path
) -> None:
    """`dry_run="false"` is no dry run and no real run either: the job is refused, naming the argument."""
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("backup", connection=conn, serializer=rq_serializer(serializer))  # type: ignore[arg-type]
    retention = Queue("retention", connection=conn, serializer=rq_serializer(serializer))  # type: ignore[arg-type]
    bad = {
        retention.enqueue("jobs.retention.prune_backups", kwargs={"dry_run": "false"}).id: "'dry_run' is 'false'",
        queue.enqueue("jobs.backup.run_backup", kwargs={"tables": "public.orders"}).id: "'tables' is 'public.orders'",
        queue.enqueue("jobs.diagnostics.ping", "soon").id: "'delay_s' is 'soon' (str)",
    }
    good = queue.enqueue("jobs.diagnostics.ping", kwargs={"delay_s": 0})
    env = {"REDIS_URL": redis_url, "RAILYARD_SERIALIZER": serializer, "BACKUP_STORAGE_URL": str(tmp_path)}
    worker = start_worker(env)
    for job_id, expected in bad.items():
        done = wait_finished(conn, job_id)
        reason = done.latest_result().exc_string
        assert (JobStatus.FAILED, True) == (done.get_status(), expected in reason), reason
        assert reason.startswith("refused: ") and "Traceback" not in reason
    assert JobStatus.FINISHED == wait_finished(conn, good.id).get_status()
    started = {line.get("job_id") for line in worker.lines() if str(line.get("event", "")).endswith("_started")}
    assert set() == started & set(bad)
    conn.close()


def test_the_exception_text_rq_stores_is_redacted(start_worker, redis_url: str, tmp_path: Path) -> None:
    """A job's error that quotes a configured secret (here via its own argument) is stored with it replaced."""
    secret = "Sentinel-stored-exc-9Zq"
    conn = redis.Redis.from_url(redis_url)
    job = Queue("backup", connection=conn).enqueue(
        "jobs.verify.verify_backup", kwargs={"backup_id": f"{secret}-20260101T000000Z"}
    )
    env = {"REDIS_URL": redis_url, "BACKUP_STORAGE_URL": str(tmp_path), "AWS_SECRET_ACCESS_KEY": secret}
    worker = start_worker(env)
    done = wait_finished(conn, job.id)
    stored = done.latest_result().exc_string
    assert (JobStatus.FAILED, True, False) == (done.get_status(), "***-20260101T000000Z" in stored, secret in stored)
    assert secret not in worker.text()
    conn.close()
