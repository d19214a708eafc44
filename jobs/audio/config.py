"""Settings of the audio job, read from the environment once and validated together.

Every problem is reported at once in one ConfigError. Sources and outputs live under
``AUDIO_STORAGE_URL``, which defaults to the backup storage's bucket (or directory)
with an ``audio`` prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from railyard.core.envparse import parse_float, parse_int
from railyard.core.errors import ConfigError
from railyard.core.settings import DEFAULT_BACKUP_STORAGE_URL, storage_url_problems

OutputFormat = Literal["aac", "mp3", "opus"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("aac", "mp3", "opus")

DEFAULT_TABLE = "audio_files"
DEFAULT_PREFIX = "audio"
DEFAULT_MAX_BYTES = 1_000_000_000  # Yoto's upload limit is 1 GB
DEFAULT_MAX_DURATION_S = 5 * 3600
DEFAULT_TARGET_LUFS = -16.0  # spoken content (Apple, AES)
DEFAULT_TRUE_PEAK_DBTP = -1.0
DEFAULT_BITRATE_KBPS = 128  # what Yoto transcodes to
DEFAULT_STALE_AFTER_S = 300

TARGET_LUFS_RANGE = (-40.0, -5.0)
TRUE_PEAK_RANGE_DBTP = (-9.0, 0.0)
BITRATE_RANGE_KBPS = (32, 320)
MIN_STALE_AFTER_S = 60  # must stay well above the heartbeat interval of a running job
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class AudioConfig:
    """What the audio job reads from the environment. Build with :meth:`from_env`."""

    table: str = DEFAULT_TABLE
    storage_url: str = f"./backups/{DEFAULT_PREFIX}"
    max_bytes: int = DEFAULT_MAX_BYTES
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    target_lufs: float = DEFAULT_TARGET_LUFS
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP
    output_format: OutputFormat = "aac"
    bitrate_kbps: int = DEFAULT_BITRATE_KBPS
    mono: bool = False
    stale_after_s: int = DEFAULT_STALE_AFTER_S

    @property
    def table_parts(self) -> tuple[str, ...]:
        """The table name split into schema and table, for psycopg.sql.Identifier."""
        return tuple(self.table.split("."))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AudioConfig:
        """Read and validate every AUDIO_* variable; raise one ConfigError listing all problems."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str) -> str:
            return env.get(name, "").strip()

        table = get("AUDIO_TABLE") or DEFAULT_TABLE
        if not all(IDENTIFIER.match(part) for part in table.split(".")) or table.count(".") > 1:
            problems.append(
                f"AUDIO_TABLE={table!r} is not a table name; use letters, digits and underscores, "
                "optionally schema-qualified (e.g. audio_files or media.audio_files)"
            )

        storage_url = get("AUDIO_STORAGE_URL")
        if storage_url:
            problems.extend(storage_url_problems("AUDIO_STORAGE_URL", storage_url))
        else:
            backup_url = get("BACKUP_STORAGE_URL") or DEFAULT_BACKUP_STORAGE_URL
            backup_problems = storage_url_problems("BACKUP_STORAGE_URL", backup_url)
            problems.extend(backup_problems)
            storage_url = backup_url if backup_problems else default_storage_url(backup_url)

        max_bytes = _number(get("AUDIO_MAX_BYTES"), DEFAULT_MAX_BYTES, "AUDIO_MAX_BYTES", problems, integer=True)
        if max_bytes <= 0:
            problems.append(f"AUDIO_MAX_BYTES={max_bytes} must be a positive number of bytes, e.g. 1000000000")
        max_duration_s = _number(get("AUDIO_MAX_DURATION_S"), DEFAULT_MAX_DURATION_S, "AUDIO_MAX_DURATION_S", problems)
        if max_duration_s <= 0:
            problems.append(f"AUDIO_MAX_DURATION_S={max_duration_s:g} must be a positive number of seconds, e.g. 18000")

        target = _number(get("AUDIO_TARGET_LUFS"), DEFAULT_TARGET_LUFS, "AUDIO_TARGET_LUFS", problems)
        if not TARGET_LUFS_RANGE[0] <= target <= TARGET_LUFS_RANGE[1]:
            problems.append(
                f"AUDIO_TARGET_LUFS={target:g} is outside {TARGET_LUFS_RANGE[0]:g}..{TARGET_LUFS_RANGE[1]:g}; "
                "use e.g. -16 (spoken word) or -14 (music)"
            )
        ceiling = _number(get("AUDIO_TRUE_PEAK_DBTP"), DEFAULT_TRUE_PEAK_DBTP, "AUDIO_TRUE_PEAK_DBTP", problems)
        if not TRUE_PEAK_RANGE_DBTP[0] <= ceiling <= TRUE_PEAK_RANGE_DBTP[1]:
            problems.append(
                f"AUDIO_TRUE_PEAK_DBTP={ceiling:g} is outside "
                f"{TRUE_PEAK_RANGE_DBTP[0]:g}..{TRUE_PEAK_RANGE_DBTP[1]:g}; use e.g. -1"
            )

        output_format = (get("AUDIO_FORMAT") or "aac").lower()
        if output_format not in OUTPUT_FORMATS:
            problems.append(f"AUDIO_FORMAT={output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
            output_format = "aac"

        bitrate = _number(get("AUDIO_BITRATE_KBPS"), DEFAULT_BITRATE_KBPS, "AUDIO_BITRATE_KBPS", problems, integer=True)
        if not BITRATE_RANGE_KBPS[0] <= bitrate <= BITRATE_RANGE_KBPS[1]:
            problems.append(
                f"AUDIO_BITRATE_KBPS={bitrate} is outside "
                f"{BITRATE_RANGE_KBPS[0]}..{BITRATE_RANGE_KBPS[1]}; use e.g. 128"
            )

        mono_text = (get("AUDIO_MONO") or "false").lower()
        if mono_text not in TRUE_WORDS + FALSE_WORDS:
            problems.append(f"AUDIO_MONO={mono_text!r} is not a yes/no value; use true or false")
        mono = mono_text in TRUE_WORDS

        stale = _number(
            get("AUDIO_STALE_AFTER_S"), DEFAULT_STALE_AFTER_S, "AUDIO_STALE_AFTER_S", problems, integer=True
        )
        if stale < MIN_STALE_AFTER_S:
            problems.append(f"AUDIO_STALE_AFTER_S={stale} is below the {MIN_STALE_AFTER_S} s minimum; use e.g. 300")

        if problems:
            raise ConfigError(problems)
        return cls(
            table=table,
            storage_url=storage_url,
            max_bytes=int(max_bytes),
            max_duration_s=float(max_duration_s),
            target_lufs=float(target),
            true_peak_dbtp=float(ceiling),
            output_format=output_format,  # type: ignore[arg-type]
            bitrate_kbps=int(bitrate),
            mono=mono,
            stale_after_s=int(stale),
        )


def default_storage_url(backup_storage_url: str) -> str:
    """The backup storage's bucket (or directory) with an ``audio`` prefix."""
    parts = urlsplit(backup_storage_url)
    if parts.scheme == "s3":
        return urlunsplit(parts._replace(path=f"/{DEFAULT_PREFIX}", query="", fragment=""))
    return f"{backup_storage_url.rstrip('/')}/{DEFAULT_PREFIX}"


def _number(text: str, default: float, name: str, problems: list[str], *, integer: bool = False) -> float:
    if not text:
        return default
    try:
        return parse_int(text) if integer else parse_float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        problems.append(f"{name}={text!r} is not {kind}")
        return default
