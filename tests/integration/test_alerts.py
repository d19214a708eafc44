"""Alerts and pings over real HTTP to a local server: payload shape, scrubbing, retries, never raising."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import structlog.testing

from jobs.backup.catalog import backup_key
from jobs.backup.staleness import check_stale_backups
from railyard.core import delivery
from railyard.core.alert_config import AlertConfig
from railyard.core.alerts import Alert, ping, pinged, send_alert
from railyard.core.errors import ConfigError
from railyard.core.settings import Settings
from railyard.core.storage import StorageLocation, open_store
from tests.conftest import SENTINEL_PASSWORD, free_port
from tests.unit.test_staleness import manifest
from tests.webhook_server import webhook_server


def test_alert_payload_is_slack_and_discord_compatible_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SENTINEL_PASSWORD}@db:5432/app")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-xyz")
    with webhook_server() as hook:
        alert = Alert(
            "job_failed",
            f"job failed: password {SENTINEL_PASSWORD} rejected",
            "production",
            {"error": "aws-secret-xyz leaked", "nested": [{"x": SENTINEL_PASSWORD}]},
        )
        assert send_alert(alert, AlertConfig(webhook_url=hook.url + "/hook"))
        [received] = hook.received
    body = received.json()
    assert "/hook" == received.path
    assert "application/json" == received.headers["Content-Type"]
    assert "[railyard production] job failed: password *** rejected" == body["text"] == body["content"]
    assert ("job_failed", "production") == (body["event"], body["environment"])
    assert {"error": "*** leaked", "nested": [{"x": "***"}]} == body["details"]
    assert SENTINEL_PASSWORD not in received.body.decode() and "aws-secret-xyz" not in received.body.decode()


def test_delivery_retries_server_errors_then_succeeds() -> None:
    with webhook_server() as hook:
        hook.fail_first = 2
        assert delivery.post(hook.url, b"{}")
        assert 1 == len(hook.received)


def test_delivery_gives_up_quietly_when_nobody_listens() -> None:
    started = time.monotonic()
    assert not delivery.post(f"http://127.0.0.1:{free_port()}/", b"{}", attempts=2)
    assert time.monotonic() - started < 5


def test_delivery_times_out_on_a_hanging_server() -> None:
    with webhook_server() as hook:
        hook.delay_s = 2
        started = time.monotonic()
        assert not delivery.post(hook.url, b"{}", timeout_s=0.3, attempts=2)
        assert time.monotonic() - started < 2.5


def test_no_webhook_configured_sends_nothing() -> None:
    assert not send_alert(Alert("job_failed", "x", "dev"), AlertConfig())
    assert not ping("start", AlertConfig())


def test_pings_follow_the_healthchecks_convention() -> None:
    with webhook_server() as hook:
        config = AlertConfig(ping_url=hook.url + "/uuid")
        with pinged(config):
            pass
        with pytest.raises(RuntimeError), pinged(config):
            raise RuntimeError("pg_dump exited with code 1\nsecond line")
        with pytest.raises(RuntimeError), pinged(config, is_final=lambda exc: False):
            raise RuntimeError("will be retried")
    assert ["/uuid/start", "/uuid", "/uuid/start", "/uuid/fail", "/uuid/start"] == hook.paths()
    assert b"pg_dump exited with code 1" == hook.received[3].body


def test_stale_check_alerts_once_per_database_and_period(tmp_path, redis_conn, redis_url) -> None:
    """An hourly check that finds the same stale backup sends one alert, not one an hour."""
    store_url = str(tmp_path / "store")
    location = StorageLocation.parse(store_url)
    store = open_store(location)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    old = manifest("app", now - timedelta(hours=30))
    key = backup_key(location, "development", "app", old.finished)
    old = type(old)(**{**old.__dict__, "key": key.key, "id": key.id, "size": len(b"dump")})
    store.put_bytes(key.key, b"dump")
    store.put_bytes(key.manifest_key, old.to_json())
    fresh = manifest("web", now - timedelta(hours=1))
    fkey = backup_key(location, "development", "web", fresh.finished)
    fresh = type(fresh)(**{**fresh.__dict__, "key": fkey.key, "id": fkey.id, "size": len(b"dump")})
    store.put_bytes(fkey.key, b"dump")
    store.put_bytes(fkey.manifest_key, fresh.to_json())
    settings = Settings(
        redis_url=redis_url, database_url="postgresql://postgres@127.0.0.1/app", backup_storage_url=store_url
    )
    with webhook_server() as hook:
        config = AlertConfig(webhook_url=hook.url)
        runs = [
            check_stale_backups(settings=settings, config=config, connection=redis_conn, now=lambda t=t: t)
            for t in (now, now + timedelta(hours=1), now + timedelta(hours=2))
        ]
        later = now + timedelta(hours=23)  # app's next stale period (53h old): one reminder
        runs.append(check_stale_backups(settings=settings, config=config, connection=redis_conn, now=lambda: later))
    assert [["app"], [], [], ["app"]] == [r["alerted"] for r in runs]
    assert [["app"]] * 3 == [r["stale"] for r in runs[:3]]
    payloads = [json.loads(r.body) for r in hook.received]
    assert ["backup_stale", "backup_stale"] == [p["event"] for p in payloads]
    assert payloads[0]["text"].startswith("[railyard development] the newest backup of database app is 1d06h old")
    assert payloads[1]["text"].startswith("[railyard development] the newest backup of database app is 2d05h old")
    assert key.id == payloads[0]["details"]["id"]


def test_alerts_reach_apprise_urls_scrubbed_beside_the_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALERT_URLS in Apprise's syntax (here its JSON notifier, pointed at a loopback server)."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SENTINEL_PASSWORD}@db:5432/app")
    with webhook_server() as hook, webhook_server() as notified:
        apprise_url = notified.url.replace("http://", "json://") + "/notify/tok3n-abcdef123456"
        monkeypatch.setenv("ALERT_URLS", apprise_url)
        config = AlertConfig.from_env({"ALERT_WEBHOOK_URL": hook.url + "/hook", "ALERT_URLS": apprise_url})
        alert = Alert("job_failed", f"job failed: password {SENTINEL_PASSWORD} rejected", "production", {"n": 3})
        assert send_alert(alert, config)
        [webhook] = hook.received
        [received] = notified.received
    body = received.json()
    assert "/notify/tok3n-abcdef123456" == received.path
    assert ("railyard production: job_failed", "info") == (body["title"], body["type"])
    assert "[railyard production] job failed: password *** rejected\n\nn: 3" == body["message"]
    assert SENTINEL_PASSWORD not in received.body.decode()
    assert "job_failed" == webhook.json()["event"]


def test_an_unreachable_apprise_url_is_logged_by_scheme_only(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"json://127.0.0.1:{free_port()}/notify/secret-token-0123456789"
    monkeypatch.setenv("ALERT_URLS", url)
    with structlog.testing.capture_logs() as logs:
        assert not send_alert(Alert("job_failed", "x", "production"), AlertConfig(alert_urls=(url,)))
    [failed] = [line for line in logs if line["event"] == "notification_failed"]
    assert ["json"] == failed["schemes"]
    assert "secret-token" not in repr(logs)


def test_alert_urls_apprise_cannot_use_are_configuration_problems_without_the_url() -> None:
    with pytest.raises(ConfigError) as info:
        AlertConfig.from_env({"ALERT_URLS": "json://ok.example/x nosuch://tok3n-abc/def", "ALERT_ON_SUCCESS": "maybe"})
    assert [
        "ALERT_URLS entry 2 (scheme 'nosuch') is not a URL Apprise can send to",
        "ALERT_ON_SUCCESS='maybe' is not true or false",
    ] == [p.split(";")[0] for p in info.value.problems]
    assert "tok3n" not in str(info.value)
    config = AlertConfig.from_env({"ALERT_URLS": "json://a.example/x  ntfys://ntfy.sh/topic", "ALERT_ON_SUCCESS": "1"})
    assert (2, True) == (len(config.alert_urls), config.notify_success)
    assert "ntfy" not in repr(config)


def test_a_successful_backup_sends_a_notice_when_asked(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path
) -> None:
    from jobs.backup import run_backup

    with webhook_server() as notified:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("BACKUP_STORAGE_URL", str(tmp_path))
        monkeypatch.setenv("ALERT_URLS", notified.url.replace("http://", "json://") + "/ok")
        monkeypatch.setenv("ALERT_ON_SUCCESS", "false")
        run_backup()
        assert [] == notified.received
        monkeypatch.setenv("ALERT_ON_SUCCESS", "true")
        done = run_backup()
        [received] = notified.wait_for(1)
    body = received.json()
    assert "railyard development: backup_succeeded" == body["title"]
    assert f"backed up 1 database: {done['id']} ({done['size']:,} bytes stored)" in body["message"]


def test_the_weekly_summary_is_scheduled_when_asked_and_delivered(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from jobs.backup.summary import send_weekly_summary
    from railyard.core import registry
    from railyard.core.schedule_config import ScheduleConfig
    from scheduler.schedule import build_schedule
    from tests.manifests import put_backup

    assert "weekly-summary" not in {e.id for e in build_schedule(ScheduleConfig.from_env({}), (), registry.REGISTRY)}
    config = ScheduleConfig.from_env({"WEEKLY_SUMMARY_CRON": "0 8 * * 1"})
    [entry] = [e for e in build_schedule(config, (), registry.REGISTRY) if e.id == "weekly-summary"]
    assert ("0 8 * * 1", "jobs.summary.send_weekly_summary") == (entry.cron, entry.func)

    store, location = open_store(str(tmp_path)), StorageLocation.parse(str(tmp_path))
    put_backup(store, location, environment="development", database="app", finished_at=datetime.now(UTC))
    with webhook_server() as notified:
        monkeypatch.setenv("BACKUP_STORAGE_URL", str(tmp_path))
        monkeypatch.setenv("ALERT_URLS", notified.url.replace("http://", "json://") + "/hooks/tok3n-0123456789")
        result = send_weekly_summary()
        [received] = notified.received
    body = received.json()
    assert (True, "railyard development: weekly_summary") == (result["delivered"], body["title"])
    assert "app: 1 backup, newest 46 B, verifications 0 passed, 0 failed" in body["message"]
    assert body["message"].startswith("[railyard development] weekly summary to ")
