"""The redaction layer knows every configured secret and catches each in every spelling."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from railyard.core.alerts import Alert
from railyard.core.redact import REDACTED, Redactor, environment_secrets, redact

SENTINELS = {
    "DATABASE_URL": "db-sentinel @:/%#?&=+ 1",
    "RESTORE_TARGET_URL": "restore-sentinel/2",
    "VERIFY_DATABASE_URL": "verify-sentinel#3",
    "BACKUP_DATABASE_URLS": "named-sentinel?4",
    "REDIS_URL": "redis-sentinel-5",
    "PGPASSWORD": "pgpassword-sentinel-6",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-sentinel-7",
    "AWS_SESSION_TOKEN": "aws-token-sentinel-8",
    "AWS_ENDPOINT_URL_S3": "endpoint-sentinel-9",
    "BACKUP_ENCRYPTION_IDENTITY": "AGE-SECRET-KEY-1SENTINEL0000000000000000000000000000000000000000000000000",
    "ALERT_WEBHOOK_URL": "T0SENTINEL/B0SENTINEL/webhooksentineltoken10",
    "HEALTHCHECK_PING_URL": "0f8c2b7e-ping-sentinel-4d3a-9e11",
    "ALERT_URLS": "123456789:AAHsentinelBotToken11",
    "ALERT_URLS_MAIL": "mail-sentinel-pw-12",
    "BACKUP_COPY_AWS_SECRET_ACCESS_KEY": "copy-secret-sentinel-13",
    "BACKUP_COPY_AWS_ENDPOINT_URL_S3": "copy-endpoint-sentinel-14",
}


def configured(identity_file: str = "") -> dict[str, str]:
    e = {k: quote(v, safe="") for k, v in SENTINELS.items()}
    env = {
        "DATABASE_URL": f"postgresql://app:{e['DATABASE_URL']}@db:5432/app",
        "RESTORE_TARGET_URL": f"host=db dbname=copy password='{SENTINELS['RESTORE_TARGET_URL']}'",
        "VERIFY_DATABASE_URL": f"postgresql://v:{e['VERIFY_DATABASE_URL']}@db/postgres",
        "BACKUP_DATABASE_URLS": f"a=postgresql://a@db/a b=postgresql://b:{e['BACKUP_DATABASE_URLS']}@other/b",
        "REDIS_URL": f"redis://:{e['REDIS_URL']}@cache:6379/0",
        "PGPASSWORD": SENTINELS["PGPASSWORD"],
        "AWS_SECRET_ACCESS_KEY": SENTINELS["AWS_SECRET_ACCESS_KEY"],
        "AWS_SESSION_TOKEN": SENTINELS["AWS_SESSION_TOKEN"],
        "AWS_ENDPOINT_URL_S3": f"https://minio:{e['AWS_ENDPOINT_URL_S3']}@s3.example.com",
        "ALERT_WEBHOOK_URL": f"https://hooks.slack.com/services/{SENTINELS['ALERT_WEBHOOK_URL']}",
        "HEALTHCHECK_PING_URL": f"https://hc-ping.com/{SENTINELS['HEALTHCHECK_PING_URL']}",
        "BACKUP_COPY_AWS_SECRET_ACCESS_KEY": SENTINELS["BACKUP_COPY_AWS_SECRET_ACCESS_KEY"],
        "BACKUP_COPY_AWS_ENDPOINT_URL_S3": f"https://b2:{e['BACKUP_COPY_AWS_ENDPOINT_URL_S3']}@s3.example.net",
        "ALERT_URLS": f"tgram://{SENTINELS['ALERT_URLS']}/12345 mailto://ops:{e['ALERT_URLS_MAIL']}@mail.example.com",
    }
    if identity_file:
        env["BACKUP_ENCRYPTION_IDENTITY_FILE"] = identity_file
    else:
        env["BACKUP_ENCRYPTION_IDENTITY"] = SENTINELS["BACKUP_ENCRYPTION_IDENTITY"]
    return env


def leaks(text: str) -> list[str]:
    found = []
    for name, secret in SENTINELS.items():
        for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1]):
            if form in text:
                found.append(name)
    return found


def test_every_configured_secret_is_known(tmp_path) -> None:
    identity = tmp_path / "key.txt"
    identity.write_text(f"# created: today\n{SENTINELS['BACKUP_ENCRYPTION_IDENTITY']}\n")
    for env in (configured(), configured(str(identity))):
        text = " | ".join(f"{k}={v}" for k, v in env.items()) + " " + " ".join(SENTINELS.values())
        text += " " + json.dumps(list(SENTINELS.values()))
        assert [] == leaks(redact(text, env))


def test_webhook_urls_are_redacted_whole_but_ordinary_words_survive() -> None:
    env = configured()
    text = f"posting to {env['ALERT_WEBHOOK_URL']} failed; services are fine"
    assert f"posting to {REDACTED} failed; services are fine" == redact(text, env)


def test_webhook_payloads_are_redacted_in_nested_values() -> None:
    alert = Alert("job_failed", f"boom {SENTINELS['DATABASE_URL']}", "prod", {"e": [{"x": SENTINELS["PGPASSWORD"]}]})
    body = json.dumps(alert.payload(environment_secrets(configured())))
    assert [] == leaks(body)


def test_short_values_are_left_alone() -> None:
    assert "a pw here" == Redactor(["pw", "a", ""])("a pw here")


SECRET_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=4, max_size=24)


@settings(max_examples=300, deadline=None)
@given(secret=SECRET_TEXT, before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_secret_never_survives_in_any_spelling(secret: str, before: str, after: str) -> None:
    """Whatever the password, as written, percent-encoded, JSON- or repr-escaped, it is replaced."""
    redact_ = Redactor([secret])
    for shown in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1], repr(secret)[1:-1]):
        assert shown not in redact_(before + shown + after) or shown in before + after
