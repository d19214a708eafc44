"""Start-up validation: hostile URL-shaped settings give configuration problems, never a traceback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.environment import environment_problems

URL_SETTINGS = (
    "DATABASE_URL",
    "RESTORE_TARGET_URL",
    "VERIFY_DATABASE_URL",
    "REDIS_URL",
    "AWS_ENDPOINT_URL_S3",
    "ALERT_WEBHOOK_URL",
    "HEALTHCHECK_PING_URL",
    "BACKUP_STORAGE_URL",
)
PIECES = st.sampled_from(
    ["postgresql://", "redis://", "https://", "s3://", "u", ":", "@", "[", "]", "::1", "/", "?", "&", "=", "%",
     "%zz", "%41", "host=", "port=", "dbname=", "password=", "'", "\\", " ", ",", "h", "5432", "99999", "-1",
     "\uff10", "#", "app="]
)  # fmt: skip
HOSTILE = st.lists(PIECES | st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=3),
                   max_size=12).map("".join)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(URL_SETTINGS), HOSTILE, HOSTILE)
def test_hostile_url_settings_are_problems_not_tracebacks(name: str, value: str, named: str) -> None:
    """Any text in any URL setting (and in BACKUP_DATABASE_URLS) yields a list of problems, never an exception."""
    problems = environment_problems({name: value, "BACKUP_DATABASE_URLS": named})
    assert all(isinstance(p, str) and p for p in problems)


def test_every_problem_of_every_family_at_once() -> None:
    env = {
        "BACKUP_ZSTD_LEVEL": "0",
        "BACKUP_CRON": "every day",
        "WORKER_HEARTBEAT_GRACE_S": "1_0",
        "MIGRATION_LOCK_TIMEOUT_S": "nan",
        "BACKUP_KEEP_DAILY": "-1",
        "BACKUP_DATABASE_URLS": "x=mysql://h/d",
    }
    found = environment_problems(env)
    assert [] == [k for k in env if not any(k in p for p in found)], found


def test_a_named_source_that_takes_database_urls_series_for_another_server_is_refused() -> None:
    """On Railway every database is `railway`: an entry named so, on another server, would share its series."""
    env = {
        "DATABASE_URL": "postgresql://u:pw@app.railway.internal:5432/railway",
        "BACKUP_DATABASE_URLS": "railway=postgresql://u:pw@analytics.railway.internal:5432/railway",
    }
    [problem] = [p for p in environment_problems(env) if "BACKUP_DATABASE_URLS" in p]
    assert problem.startswith("BACKUP_DATABASE_URLS names 'railway', which is DATABASE_URL's series"), problem
    assert "pw" not in problem.replace("postgresql", "")


@pytest.mark.parametrize("entry", ["app=", "railway="])
def test_a_named_source_for_database_urls_own_database_or_another_name_passes(entry: str) -> None:
    env = {
        "DATABASE_URL": "postgresql://u@app.railway.internal:5432/railway",
        "BACKUP_DATABASE_URLS": entry + "postgresql://u@app.railway.internal:5432/railway",
    }
    assert [] == [p for p in environment_problems(env) if "BACKUP_DATABASE_URLS" in p]
