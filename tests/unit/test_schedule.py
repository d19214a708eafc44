"""The declared schedule from settings: entries, ids, fingerprints, work ids; cron validation at start-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from rq.job import JOB_ID_PATTERN

from railyard.core.errors import ConfigError
from railyard.core.schedule_config import ScheduleConfig
from railyard.core.settings import Settings
from scheduler.schedule import (
    BACKUP_JOB,
    PRUNE_JOB,
    PURGE_JOB,
    STALENESS_JOB,
    VERIFY_JOB,
    BackupTarget,
    Entry,
    build_schedule,
    slug,
    targets_from_settings,
)

APP = (BackupTarget("app"),)


def ids(entries: tuple[Entry, ...]) -> list[str]:
    return [entry.id for entry in entries]


def test_defaults() -> None:
    config = ScheduleConfig.from_env({})
    assert ("0 3 * * *", "30 4 * * *", "0 5 * * 0", "15 * * * *", "UTC") == (
        config.backup_cron,
        config.retention_cron,
        config.verify_cron,
        config.staleness_cron,
        config.timezone,
    )
    assert (True, None, 30.0, 3600.0) == (
        config.catch_up,
        config.retention_config,
        config.interval_s,
        config.catch_up_interval_s,
    )


def test_variables_are_read() -> None:
    config = ScheduleConfig.from_env(
        {
            "BACKUP_CRON": " 15  2 * * * ",
            "RETENTION_CRON": "@daily",
            "VERIFY_CRON": "0 6 * * 1",
            "STALENESS_CRON": "*/30 * * * *",
            "SCHEDULE_TIMEZONE": "Europe/Paris",
            "RETENTION_CONFIG": "retention.toml",
            "BACKUP_CATCH_UP": "false",
            "SCHEDULER_INTERVAL_S": "0.5",
            "CATCH_UP_INTERVAL_S": "60",
        }
    )
    expected = ScheduleConfig(
        "15 2 * * *", "@daily", "0 6 * * 1", "*/30 * * * *", "Europe/Paris", "retention.toml", False, 0.5, 60
    )
    assert expected == config


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("BACKUP_CRON", "0 3 * *", "BACKUP_CRON='0 3 * *' has 4 fields"),
        ("RETENTION_CRON", "30 25 * * *", "RETENTION_CRON='30 25 * * *' is not a valid cron expression"),
        ("VERIFY_CRON", "0 5 31 2 *", "VERIFY_CRON='0 5 31 2 *' never matches a date"),
        ("STALENESS_CRON", "hourly", "STALENESS_CRON='hourly' has 1 field"),
        ("WEEKLY_SUMMARY_CRON", "weekly", "WEEKLY_SUMMARY_CRON='weekly' has 1 field"),
        ("SCHEDULE_TIMEZONE", "Europe/Atlantis", "SCHEDULE_TIMEZONE='Europe/Atlantis' is not an IANA time zone"),
        # files of the zone database that name no place: the machine's own zone, and "none configured"
        ("SCHEDULE_TIMEZONE", "localtime", "SCHEDULE_TIMEZONE='localtime' is not an IANA time zone"),
        ("SCHEDULE_TIMEZONE", "Factory", "SCHEDULE_TIMEZONE='Factory' is not an IANA time zone"),
        ("SCHEDULE_TIMEZONE", "posixrules", "SCHEDULE_TIMEZONE='posixrules' is not an IANA time zone"),
        ("SCHEDULE_TIMEZONE", "../zoneinfo/UTC", "SCHEDULE_TIMEZONE='../zoneinfo/UTC' is not an IANA time zone"),
        ("BACKUP_CATCH_UP", "maybe", "BACKUP_CATCH_UP='maybe' is not true or false"),
        ("SCHEDULER_INTERVAL_S", "0", "SCHEDULER_INTERVAL_S='0' is not a number of seconds"),
        ("SCHEDULER_INTERVAL_S", "fast", "SCHEDULER_INTERVAL_S='fast' is not a number of seconds"),
        ("CATCH_UP_INTERVAL_S", "-5", "CATCH_UP_INTERVAL_S='-5' is not a number of seconds"),
    ],
)
def test_each_bad_variable_is_named(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScheduleConfig.from_env({name: value})
    assert [fragment] == [p[: len(fragment)] for p in info.value.problems]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        ScheduleConfig.from_env({"BACKUP_CRON": "nightly", "RETENTION_CRON": "* *", "SCHEDULE_TIMEZONE": "Nowhere"})
    assert ["SCHEDULE_TIMEZONE", "BACKUP_CRON", "RETENTION_CRON"] == [p.split("=")[0] for p in info.value.problems]


def test_default_schedule_backs_up_each_database_then_prunes() -> None:
    entries = build_schedule(ScheduleConfig(), (BackupTarget("app"), BackupTarget("billing")), registered_jobs=())
    assert ["backup-app", "backup-billing", "prune-backups"] == ids(entries)
    backup = entries[0]
    assert (BACKUP_JOB, "0 3 * * *", "UTC", "app", True, {}) == (
        backup.func,
        backup.cron,
        backup.timezone,
        backup.subject,
        backup.catch_up,
        dict(backup.kwargs),
    )
    assert (PRUNE_JOB, "30 4 * * *", None, False) == (
        entries[2].func,
        entries[2].cron,
        entries[2].subject,
        entries[2].catch_up,
    )


def test_data_retention_only_with_policies() -> None:
    config = replace(ScheduleConfig(), retention_config="retention.toml")
    entries = build_schedule(config, APP, registered_jobs=())
    assert ["backup-app", "prune-backups", "purge-rows"] == ids(entries)
    assert (PURGE_JOB, "30 4 * * *") == (entries[2].func, entries[2].cron)


def test_verification_appears_once_its_job_is_registered() -> None:
    config = replace(ScheduleConfig(), verify_cron="0 6 * * 6")
    assert "verify-backups" not in ids(build_schedule(config, APP, registered_jobs={BACKUP_JOB}))
    entries = build_schedule(config, APP, registered_jobs={BACKUP_JOB, VERIFY_JOB})
    assert ["backup-app", "prune-backups", "verify-backups"] == ids(entries)
    assert (VERIFY_JOB, "0 6 * * 6") == (entries[-1].func, entries[-1].cron)


def test_the_staleness_check_runs_hourly_once_its_job_is_registered() -> None:
    assert "check-staleness" not in ids(build_schedule(ScheduleConfig(), APP, registered_jobs={BACKUP_JOB}))
    entries = build_schedule(ScheduleConfig(), APP, registered_jobs={BACKUP_JOB, STALENESS_JOB})
    assert ["backup-app", "prune-backups", "check-staleness"] == ids(entries)
    check = entries[-1]
    assert (STALENESS_JOB, "15 * * * *", "staleness", None, False) == (
        check.func,
        check.cron,
        check.kind,
        check.subject,
        check.catch_up,
    )


def test_timezone_and_catch_up_apply_to_entries() -> None:
    config = replace(ScheduleConfig(), timezone="America/New_York", catch_up=False)
    entries = build_schedule(config, APP, registered_jobs=())
    assert {"America/New_York"} == {e.timezone for e in entries}
    assert not any(e.catch_up for e in entries)


def test_the_same_database_twice_is_one_entry() -> None:
    assert ["backup-app", "prune-backups"] == ids(build_schedule(ScheduleConfig(), APP + APP, registered_jobs=()))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:secret@db.internal:5432/app?sslmode=require", "app"),
        ("postgres://bob@db", "bob"),
        ("postgresql://db:5432/", "postgres"),
    ],
)
def test_the_application_database_is_the_target(url: str, expected: str) -> None:
    targets = targets_from_settings(Settings.from_env({"DATABASE_URL": url}), {})
    assert (BackupTarget(expected),) == targets
    assert {} == dict(targets[0].kwargs)  # the job backs up its own DATABASE_URL: no URL in Redis


def test_named_databases_are_targets_catalogued_by_their_source_name() -> None:
    """Two Railway services whose databases are both called `railway` are two targets, two series."""
    env = {"BACKUP_DATABASE_URLS": "analytics=postgresql://u:pw@wh/railway app=postgresql://u@db/railway"}
    targets = targets_from_settings(Settings.from_env({"DATABASE_URL": "postgresql://u@db/app"}), env)
    assert (BackupTarget("analytics", {"database": "analytics"}), BackupTarget("app", {"database": "app"})) == targets
    assert "pw" not in repr(targets)


def test_all_databases_is_one_target() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u@db/app"})
    assert (BackupTarget("app", {"all_databases": True}),) == targets_from_settings(
        settings, {"BACKUP_ALL_DATABASES": "true"}
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [("app", "app"), ("my-app_2", "my-app_2"), ("my app", "my_app_cccdfa"), ("x.y", "x_y_b24ca9"), ("", "_e3b0c4")],
)
def test_slug(name: str, expected: str) -> None:
    assert expected == slug(name)
    assert JOB_ID_PATTERN.fullmatch(slug(name))


def test_slugs_of_different_names_differ() -> None:
    names = ["a.b", "a_b", "a b", "a/b", "a-b", "é", "e"]
    assert len(names) == len({slug(n) for n in names})


def test_fingerprint_follows_what_and_when() -> None:
    entry = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {}, "app", True)
    same = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {}, "app", False)
    assert entry.fingerprint == same.fingerprint
    for changed in (
        replace(entry, cron="0 4 * * *"),
        replace(entry, timezone="Europe/London"),
        replace(entry, func=PRUNE_JOB),
        replace(entry, kwargs={"database": "app"}),
    ):
        assert entry.fingerprint != changed.fingerprint


def test_work_id_names_kind_environment_subject_and_period() -> None:
    entry = Entry("backup-app", "backup", "0 3 * * *", "UTC", BACKUP_JOB, {}, "app", True)
    period = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert "backup-production-app-20261122T0300Z" == entry.work_id("production", period)
    prune = Entry("prune-backups", "prune", "30 4 * * *", "UTC", PRUNE_JOB)
    assert "prune-staging_env_eac02e-20261122T0430Z" == prune.work_id("staging env", period.replace(minute=30, hour=4))
    odd = replace(entry, subject="Sales DB")
    assert JOB_ID_PATTERN.fullmatch(odd.work_id("prod", period))


def test_entry_round_trips_through_a_dict() -> None:
    entry = Entry("backup-app", "backup", "0 3 * * *", "Europe/Paris", BACKUP_JOB, {"database": "app"}, "app", True)
    assert entry == Entry.from_dict(entry.to_dict())
