"""`railyard web` in Debian's chromium (Playwright): every page over a store filled by real backups."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.results import Result

from tests.conftest import ROOT, VENV_BIN
from tests.e2e.conftest import child_env, run_cli
from tests.e2e.test_backup_e2e import seed
from tests.ports import free_port, wait_for_port

pytestmark = pytest.mark.timeout(120)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test-Pw-7d1f"
# Where the README's screenshot comes from: RAILYARD_SCREENSHOT_DIR=docs pytest tests/e2e/test_web_browser.py
SCREENSHOT_DIR = "RAILYARD_SCREENSHOT_DIR"


def _failed_job(redis_conn: redis.Redis) -> str:
    audio = Queue("audio", connection=redis_conn)
    job = audio.enqueue("jobs.diagnostics.ping")
    audio.remove(job)  # as a worker takes it
    Result.create_failure(
        job, ttl=600, exc_string='Traceback (most recent call last):\n  File "x.py"\nOSError: the disk is full'
    )
    audio.failed_job_registry.add(Job.fetch(job.id, connection=redis_conn))
    return job.id


def test_dashboard_pages_and_retry_in_chromium(redis_url, redis_conn, database_url, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    seed(database_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "BACKUP_STORAGE_URL": str(tmp_path / "store")}
    port = free_port()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(
        [str(VENV_BIN / "railyard"), "web", "--host", "127.0.0.1", "--port", str(port)],
        env=child_env(**env, RAILYARD_WEB_PASSWORD=PASSWORD),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        ids, series = [], ""
        for _ in range(2):  # while the dashboard starts
            made = run_cli("backup", "--json", env=env)
            assert 0 == made.returncode, made.stderr
            manifest = json.loads(made.stdout)
            ids.append(manifest["id"])
            series = manifest["series"]
        verified = run_cli("verify", ids[0], env=env)
        assert 0 == verified.returncode, verified.stderr
        job_id = _failed_job(redis_conn)
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(
                http_credentials={"username": "admin", "password": PASSWORD}, viewport={"width": 1100, "height": 700}
            )
            page.goto(base + "/")
            assert "ok" == page.locator("tr", has_text=series).locator("td").nth(1).inner_text()
            page.screenshot(path=str(shots / "overview.png"), full_page=True)
            page.click(f"text={series}")
            assert 2 == page.locator("svg").count()
            assert {ids[0], ids[1]} <= set(page.locator("td").all_inner_texts())
            page.screenshot(path=str(shots / "series.png"), full_page=True)
            page.click("text=Verifications")
            assert "passed" == page.locator("tr", has_text=ids[0]).locator("td").nth(3).inner_text()
            page.screenshot(path=str(shots / "verifications.png"), full_page=True)
            page.click("text=Schedule")
            assert page.locator("tr", has_text="jobs.backup.run_backup").count() >= 1
            page.screenshot(path=str(shots / "schedule.png"), full_page=True)
            page.click("text=Queues")
            row = page.locator("tr", has_text=job_id)
            assert "OSError: the disk is full" == row.locator("td").nth(4).inner_text()
            page.screenshot(path=str(shots / "queues.png"), full_page=True)
            row.locator("button", has_text="Retry").click()
            page.wait_for_url("**/queues?message=*")
            assert f"requeued {job_id} on audio" == page.locator(".message").inner_text()
            page.screenshot(path=str(shots / "retried.png"), full_page=True)
            page.goto(base + "/metrics")
            assert "railyard_backup_size_bytes" in page.content()
            for name in ("overview", "series", "verifications", "schedule", "queues"):
                page.goto(base + {"overview": "/", "series": f"/series/{series}"}.get(name, f"/{name}"))
                assert PASSWORD not in page.content() and database_url not in page.content()
            browser.close()
    finally:
        web.terminate()
        web.wait(timeout=10)
        log.close()
    assert [job_id] == Queue("audio", connection=redis_conn).get_job_ids()
    assert {"overview.png", "series.png", "verifications.png", "schedule.png", "queues.png", "retried.png"} == {
        p.name for p in shots.iterdir()
    }
    if os.environ.get(SCREENSHOT_DIR):
        shutil.copy(shots / "overview.png", Path(os.environ[SCREENSHOT_DIR]) / "dashboard.png")
