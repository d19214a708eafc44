"""The backup catalog: key layout and manifests.

Layout (documented in the README, relied on by retention and by users' own tools)::

    {prefix}/{environment}/{database}/{YYYY}/{MM}/{DD}/{database}-{YYYYMMDDTHHMMSSZ}.dump.zst
    ... beside it: the same key + ".manifest.json"

The manifest is the commit marker: it is written only after the dump object is complete,
and only backups with a readable manifest exist for list, restore and retention. A
backup's id is its file stem, ``{database}-{YYYYMMDDTHHMMSSZ}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from jobs.storage import ObjectStore, StorageLocation
from railyard.errors import NotFoundError, PermanentError

DUMP_SUFFIX = ".dump.zst"
ENCRYPTED_SUFFIX = ".age"
MANIFEST_SUFFIX = ".manifest.json"
VERIFIED_SUFFIX = ".verified.json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST_VERSION = 1

_KEY_RE = re.compile(
    r"^(?P<environment>[^/]+)/(?P<database>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P<stem>(?P<database2>[^/]+)-(?P<stamp>\d{8}T\d{6}Z))(?P<suffix>\.dump\.zst(?:\.age)?)$"
)


def key_segment(name: str) -> str:
    """A database or environment name made safe as one key segment."""
    return quote(name, safe="")


@dataclass(frozen=True)
class BackupKey:
    environment: str
    database: str
    taken_at: datetime
    key: str  # full key of the dump object, including the location's prefix

    @property
    def id(self) -> str:
        return f"{key_segment(self.database)}-{self.taken_at.strftime(STAMP_FORMAT)}"

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX

    @property
    def verified_key(self) -> str:
        return self.key + VERIFIED_SUFFIX


def backup_key(
    location: StorageLocation, environment: str, database: str, taken_at: datetime, *, encrypted: bool = False
) -> BackupKey:
    taken_at = taken_at.astimezone(UTC).replace(microsecond=0)
    db = key_segment(database)
    stem = f"{db}-{taken_at.strftime(STAMP_FORMAT)}"
    suffix = DUMP_SUFFIX + (ENCRYPTED_SUFFIX if encrypted else "")
    key = location.key(key_segment(environment), db, taken_at.strftime("%Y/%m/%d"), stem + suffix)
    return BackupKey(environment, database, taken_at, key)


def parse_backup_key(location: StorageLocation, key: str) -> BackupKey | None:
    """The parts of a dump key, or None if ``key`` is not in Railyard's layout under ``location``."""
    prefix = location.key()
    if prefix:
        if not key.startswith(prefix + "/"):
            return None
        rest = key[len(prefix) + 1 :]
    else:
        rest = key
    match = _KEY_RE.match(rest)
    if not match or match["database"] != match["database2"]:
        return None
    taken_at = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    if taken_at.strftime("%Y/%m/%d") != f"{match['y']}/{match['m']}/{match['d']}":
        return None
    return BackupKey(unquote(match["environment"]), unquote(match["database"]), taken_at, key)


@dataclass(frozen=True)
class Manifest:
    """What a backup contains and how to check it. Never holds a secret."""

    id: str
    key: str
    database: str
    environment: str
    host: str
    server_version: str
    pg_dump_version: str
    format: str
    compression: str
    size: int  # bytes stored
    raw_size: int  # bytes pg_dump produced
    sha256: str  # of the stored bytes
    started_at: str
    finished_at: str
    duration_s: float
    railyard_version: str
    row_counts: dict[str, int] | None = None
    row_counts_mode: str = "exact"
    archive_checked: bool = False  # the dump's structure was read end to end while it was taken
    options: dict[str, Any] = field(default_factory=dict)
    encryption: dict[str, Any] | None = None
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Manifest:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise PermanentError(
                f"manifest {key!r} is corrupt ({exc}); the backup cannot be trusted and will not be used"
            ) from exc

    @property
    def finished(self) -> datetime:
        return datetime.fromisoformat(self.finished_at)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)


def iter_manifests(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str | None = None,
    database: str | None = None,
    on_corrupt: Any = None,
) -> Iterator[Manifest]:
    """Manifests in the layout under ``location`` (optionally one environment/database).

    A corrupt manifest is reported through ``on_corrupt(key, error)`` and skipped.
    """
    segments = [key_segment(s) for s in (environment, database) if s]
    if database and not environment:
        segments = []
    prefix = location.key(*segments)
    for info in store.list(prefix + "/" if prefix else ""):
        if not info.key.endswith(MANIFEST_SUFFIX):
            continue
        parsed = parse_backup_key(location, info.key[: -len(MANIFEST_SUFFIX)])
        if parsed is None or (database and parsed.database != database):
            continue
        if environment and parsed.environment != environment:
            continue
        try:
            yield Manifest.from_json(store.get_bytes(info.key), info.key)
        except (PermanentError, NotFoundError) as exc:
            if on_corrupt is not None:
                on_corrupt(info.key, exc)


def list_backups(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str | None = None,
    database: str | None = None,
    on_corrupt: Any = None,
) -> list[Manifest]:
    """Every committed backup, newest first."""
    found = iter_manifests(store, location, environment=environment, database=database, on_corrupt=on_corrupt)
    return sorted(found, key=lambda m: (m.finished_at, m.id), reverse=True)


def find_backup(
    store: ObjectStore,
    location: StorageLocation,
    backup_id: str,
    *,
    environment: str,
    database: str | None = None,
) -> Manifest:
    """The backup named ``backup_id``, or the newest one for ``latest``."""
    backups = list_backups(store, location, environment=environment, database=database)
    if backup_id == "latest":
        if not backups:
            where = f"database {database!r}" if database else "any database"
            raise NotFoundError(
                f"no backups of {where} in environment {environment!r} at {location}; run `railyard backup` first"
            )
        return backups[0]
    for manifest in backups:
        if manifest.id == backup_id:
            return manifest
    raise NotFoundError(
        f"no backup {backup_id!r} in environment {environment!r} at {location}; `railyard backups list` shows the ids"
    )
