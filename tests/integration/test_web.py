"""The dashboard's pages and actions over HTTP against a known store and real Redis."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.job import Job
from rq.results import Result
from starlette.testclient import TestClient

from jobs.backup.catalog import VERIFIED_SUFFIX, Manifest
from railyard.cli import cli
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from railyard.ops.web import create_app
from tests.manifests import put_backup

SECRET = "pw-Zq81nope"  # the database password: must appear on no page


@pytest.fixture
def known(redis_url: str, redis_conn: redis.Redis, tmp_path: Path, monkeypatch) -> Iterator[dict[str, object]]:
    now = datetime.now(UTC).replace(microsecond=0)
    storage = str(tmp_path / "store")
    store, location = open_store(storage), StorageLocation.parse(storage)
    older = put_backup(store, location, environment="production", database="app", finished_at=now - timedelta(hours=30))
    fresh = put_backup(store, location, environment="production", database="app", finished_at=now - timedelta(hours=2))
    put_backup(store, location, environment="production", database="reports", finished_at=now - timedelta(days=3))
    marker = {"backup_id": fresh.id, "series": "app", "key": fresh.key, "result": "passed"}
    store.put_bytes(fresh.key + VERIFIED_SUFFIX, json.dumps(marker | {"verified_at": now.isoformat()}).encode())
    audio = Queue("audio", connection=redis_conn)
    failed = audio.enqueue("jobs.diagnostics.ping")
    audio.remove(failed)  # as a worker takes it
    error = (
        f'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: connect failed, password {SECRET}'
    )
    Result.create_failure(failed, ttl=600, exc_string=error)
    audio.failed_job_registry.add(Job.fetch(failed.id, connection=redis_conn))
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/app",
        "BACKUP_STORAGE_URL": storage,
        "ENVIRONMENT": "production",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield {"settings": Settings.from_env(env), "older": older, "fresh": fresh, "failed": failed.id}


def _client(known: dict[str, object], password: str | None = None) -> TestClient:
    settings = known["settings"]
    assert isinstance(settings, Settings)
    return TestClient(create_app(settings, password))


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def test_every_page_shows_what_status_and_backups_list_report_and_no_secret(known) -> None:
    client = _client(known)
    fresh, older = known["fresh"], known["older"]
    assert isinstance(fresh, Manifest) and isinstance(older, Manifest)
    pages = {path: client.get(path) for path in ("/", "/series/app", "/verifications", "/schedule", "/queues")}
    assert {path: 200 for path in pages} == {path: r.status_code for path, r in pages.items()}
    overview = pages["/"].text
    assert re.search(r'<tr class="stale">\s*<td><a href="/series/reports">reports</a></td>\s*<td>STALE', overview)
    assert re.search(r'<tr class="ok">\s*<td><a href="/series/app">app</a></td>', overview)
    series = pages["/series/app"].text
    assert 2 == series.count("<svg") and fresh.id in series and older.id in series
    assert f'<td>{fresh.id}</td><td class="passed">passed</td>' in pages["/verifications"].text
    queues = pages["/queues"].text
    assert "<td>RuntimeError: connect failed, password ***</td>" in queues and "x.py" not in queues
    assert re.search(
        r"<td>prune-backups</td><td>jobs\.retention\.prune_backups</td>.*<td>not registered</td>",
        pages["/schedule"].text,
    )
    assert b"railyard_backup_size_bytes" in client.get("/metrics").content
    assert [] == [path for path, r in pages.items() if SECRET in r.text]


def test_a_password_is_required_when_set(known) -> None:
    client = _client(known, password="long-random-pass")
    assert 401 == client.get("/").status_code
    assert 401 == client.get("/metrics").status_code
    good = "Basic " + base64.b64encode(b"admin:long-random-pass").decode()
    assert 200 == client.get("/queues", headers={"Authorization": good}).status_code


def test_retry_needs_the_csrf_token_and_requeues_the_failed_job(known, redis_conn: redis.Redis) -> None:
    client = _client(known)
    job_id = known["failed"]
    refused = client.post(f"/failed/{job_id}/retry", data={"csrf": "forged"}, follow_redirects=False)
    assert 403 == refused.status_code
    assert [job_id] == Queue("audio", connection=redis_conn).failed_job_registry.get_job_ids()
    token = _csrf(client.get("/queues").text)
    done = client.post(f"/failed/{job_id}/retry", data={"csrf": token}, follow_redirects=False)
    assert (303, "/queues?message=requeued") == (done.status_code, done.headers["location"].split("%20")[0])
    assert [job_id] == Queue("audio", connection=redis_conn).get_job_ids()


def test_verify_now_enqueues_the_verification_job(known, redis_conn: redis.Redis) -> None:
    client = _client(known)
    fresh = known["fresh"]
    assert isinstance(fresh, Manifest)
    token = _csrf(client.get("/series/app").text)
    page = client.post(f"/backups/{fresh.id}/verify", data={"csrf": token})
    assert "enqueued verification of " + fresh.id in page.text
    (job,) = Queue("backup", connection=redis_conn).get_jobs()
    assert ("jobs.verify.verify_backup", {"backup_id": fresh.id}) == (job.func_name, job.kwargs)


def test_web_refuses_a_public_address_without_a_password(monkeypatch) -> None:
    monkeypatch.delenv("RAILYARD_WEB_PASSWORD", raising=False)
    result = CliRunner().invoke(cli, ["web", "--host", "0.0.0.0"])  # noqa: S104 (the address under test)
    assert 2 == result.exit_code
    assert "RAILYARD_WEB_PASSWORD" in result.output


def test_run_now_enqueues_the_entry_once_per_period(known, redis_conn: redis.Redis) -> None:
    client = _client(known)
    token = _csrf(client.get("/schedule").text)
    first = client.post("/schedule/prune-backups/run", data={"csrf": token})
    second = client.post("/schedule/prune-backups/run", data={"csrf": token})
    assert "(jobs.retention.prune_backups)" in first.text and "enqueued " in first.text
    assert "already enqueued for this period" in second.text
    assert ["jobs.retention.prune_backups"] == [
        j.func_name for j in Queue("retention", connection=redis_conn).get_jobs()
    ]
