"""AUDIO_* variables: defaults, parsing, and every problem reported at once."""

from __future__ import annotations

import pytest

from jobs.audio.config import AudioConfig, default_storage_url
from railyard.core.errors import ConfigError


def test_defaults() -> None:
    settings = AudioConfig.from_env({})
    assert AudioConfig(storage_url="./backups/audio") == settings
    assert settings.table_parts == ("audio_files",)


def test_every_variable_is_read() -> None:
    env = {
        "AUDIO_TABLE": "media.uploads",
        "AUDIO_STORAGE_URL": "s3://media-bucket/yoto",
        "AUDIO_MAX_BYTES": "5000000",
        "AUDIO_MAX_DURATION_S": "600.5",
        "AUDIO_TARGET_LUFS": "-14",
        "AUDIO_TRUE_PEAK_DBTP": "-1.5",
        "AUDIO_FORMAT": "MP3",
        "AUDIO_BITRATE_KBPS": "192",
        "AUDIO_MONO": "yes",
        "AUDIO_STALE_AFTER_S": "120",
    }
    expected = AudioConfig(
        table="media.uploads",
        storage_url="s3://media-bucket/yoto",
        max_bytes=5_000_000,
        max_duration_s=600.5,
        target_lufs=-14.0,
        true_peak_dbtp=-1.5,
        output_format="mp3",
        bitrate_kbps=192,
        mono=True,
        stale_after_s=120,
    )
    assert expected == AudioConfig.from_env(env)
    assert expected.table_parts == ("media", "uploads")


@pytest.mark.parametrize(
    ("backup_url", "expected"),
    [
        ("s3://backups-bucket/pg/prod", "s3://backups-bucket/audio"),
        ("s3://backups-bucket", "s3://backups-bucket/audio"),
        ("./backups", "./backups/audio"),
        ("/var/lib/railyard/", "/var/lib/railyard/audio"),
        ("file:///srv/backups", "file:///srv/backups/audio"),
    ],
)
def test_default_storage_follows_backup_storage(backup_url: str, expected: str) -> None:
    """The backup storage's bucket (or directory) with an audio prefix."""
    assert expected == default_storage_url(backup_url)
    assert expected == AudioConfig.from_env({"BACKUP_STORAGE_URL": backup_url}).storage_url


def test_all_problems_are_reported_together() -> None:
    env = {
        "AUDIO_TABLE": "audio files; drop",
        "AUDIO_STORAGE_URL": "ftp://host/audio",
        "AUDIO_MAX_BYTES": "1GB",
        "AUDIO_MAX_DURATION_S": "-5",
        "AUDIO_TARGET_LUFS": "-3",
        "AUDIO_TRUE_PEAK_DBTP": "2",
        "AUDIO_FORMAT": "wav",
        "AUDIO_BITRATE_KBPS": "1000",
        "AUDIO_MONO": "maybe",
        "AUDIO_STALE_AFTER_S": "10",
    }
    with pytest.raises(ConfigError) as caught:
        AudioConfig.from_env(env)
    problems = caught.value.problems
    assert len(problems) == 10
    for name in env:
        assert any(p.startswith(name) for p in problems), name
    assert "AUDIO_MAX_BYTES='1GB' is not a whole number" in problems
    assert "AUDIO_FORMAT='wav' is not one of aac, mp3, opus" in problems


def test_storage_url_must_not_carry_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        AudioConfig.from_env({"AUDIO_STORAGE_URL": "s3://key:secret@bucket/audio"})
    assert "secret" not in str(caught.value)
    assert "must not embed credentials" in str(caught.value)
