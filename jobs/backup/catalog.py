"""The backup catalog: key layout, manifests, and what in storage is a usable backup.

Layout (documented in the README, relied on by retention and by users' own tools)::

    {prefix}/{environment}/{series}/{YYYY}/{MM}/{DD}/{series}-{YYYYMMDDTHHMMSSZ}[-{token}].dump.zst
    ... beside it: the same key + ".manifest.json"

A series is the history of one source (see ``jobs.backup.series``). The manifest is the commit
marker: it is written only after the dump object is complete. A backup exists for list,
restore, verify, status and retention only when its manifest is valid, records the very
key and id it was found at, and its dump is beside it; anything else is reported, never
used and never deleted. A backup's id is its file stem.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from railyard.core.errors import NotFoundError, PermanentError
from railyard.core.storage import ObjectInfo, ObjectStore, StorageLocation

DUMP_SUFFIX = ".dump.zst"
ENCRYPTED_SUFFIX = ".age"
MANIFEST_SUFFIX = ".manifest.json"
VERIFIED_SUFFIX = ".verified.json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST_VERSION = 2  # 2 adds series, source and system_identifier; version 1 manifests stay valid
KNOWN_MANIFEST_VERSIONS = (1, 2)
# A backup dated later than now plus this is "from the future" (a clock ahead of ours): never `latest`.
FUTURE_TOLERANCE = timedelta(minutes=5)
TOKEN_HEX_DIGITS = 8

_KEY_RE = re.compile(
    r"^(?P<environment>[^/]+)/(?P<series>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P<stem>(?P<series2>[^/]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<token>[0-9a-f]{8}))?)"
    r"(?P<suffix>\.dump\.zst(?:\.age)?)$"
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RE = re.compile(r"^\d+")


def key_segment(name: str) -> str:
    """A series or environment name made safe as one key segment."""
    return quote(name, safe="")


@dataclass(frozen=True)
class BackupKey:
    environment: str
    series: str
    taken_at: datetime
    key: str  # full key of the dump object, including the location's prefix
    token: str = ""  # random suffix, where the store cannot refuse to overwrite (see railyard.core.storage)

    @property
    def id(self) -> str:
        stem = f"{key_segment(self.series)}-{self.taken_at.strftime(STAMP_FORMAT)}"
        return f"{stem}-{self.token}" if self.token else stem

    @property
    def database(self) -> str:
        """The series name (what this field meant before series had names of their own)."""
        return self.series

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX

    @property
    def verified_key(self) -> str:
        return self.key + VERIFIED_SUFFIX


def backup_key(
    location: StorageLocation,
    environment: str,
    series: str,
    taken_at: datetime,
    *,
    encrypted: bool = False,
    token: str = "",
) -> BackupKey:
    if token and not re.fullmatch(f"[0-9a-f]{{{TOKEN_HEX_DIGITS}}}", token):
        raise PermanentError(f"key token {token!r} is not {TOKEN_HEX_DIGITS} lowercase hex digits")
    taken_at = taken_at.astimezone(UTC).replace(microsecond=0)
    segment = key_segment(series)
    stem = f"{segment}-{taken_at.strftime(STAMP_FORMAT)}" + (f"-{token}" if token else "")
    suffix = DUMP_SUFFIX + (ENCRYPTED_SUFFIX if encrypted else "")
    key = location.key(key_segment(environment), segment, taken_at.strftime("%Y/%m/%d"), stem + suffix)
    return BackupKey(environment, series, taken_at, key, token)


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
    if not match or match["series"] != match["series2"]:
        return None
    try:
        taken_at = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None  # digits in the shape of a stamp that are no date (month 13)
    if taken_at.strftime("%Y/%m/%d") != f"{match['y']}/{match['m']}/{match['d']}":
        return None
    token = match["token"] or ""
    encrypted = match["suffix"].endswith(ENCRYPTED_SUFFIX)
    parsed = backup_key(
        location, unquote(match["environment"]), unquote(match["series"]), taken_at, encrypted=encrypted, token=token
    )
    # Only the canonical spelling is ours: one key per backup, whatever else percent-encoding allows.
    return parsed if parsed.key == key else None


class InvalidManifestError(PermanentError):
    """A manifest that is not what Railyard writes: never used, reported with the reason."""


_REQUIRED_TEXT = (
    "id",
    "key",
    "database",
    "environment",
    "host",
    "server_version",
    "pg_dump_version",
    "format",
    "compression",
    "sha256",
    "started_at",
    "finished_at",
    "railyard_version",
)
_REQUIRED_COUNTS = ("size", "raw_size")
_OPTIONAL_TEXT = ("row_counts_mode", "series", "source", "system_identifier")


@dataclass(frozen=True)
class Manifest:
    """What a backup contains and how to check it. Never holds a secret."""

    id: str
    key: str
    database: str  # the database's own name on its server
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
    series: str | None = None  # the series (key segment) it belongs to; version 1: the database name
    source: str | None = None  # the configured source it was taken from (a BACKUP_DATABASE_URLS name, ...)
    system_identifier: str | None = None  # pg_control_system() of the server, where the user may read it

    @property
    def series_name(self) -> str:
        return self.series if self.series is not None else self.database

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Manifest:
        """Parse and validate; raises InvalidManifestError saying what is wrong."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidManifestError(f"manifest {key!r} is corrupt (not JSON: {exc}); it will not be used") from exc
        try:
            return cls.from_dict(raw)
        except InvalidManifestError as exc:
            raise InvalidManifestError(f"manifest {key!r} is corrupt ({exc}); it will not be used") from exc

    @classmethod
    def from_dict(cls, raw: Any) -> Manifest:
        """A manifest from parsed JSON, every field checked; raises InvalidManifestError with the reason."""
        if not isinstance(raw, dict):
            raise InvalidManifestError(f"a JSON {type(raw).__name__} where an object was expected")
        values: dict[str, Any] = {}
        for name in _REQUIRED_TEXT:
            values[name] = _text(raw, name)
        for name in _REQUIRED_COUNTS:
            values[name] = _count(raw, name)
        duration = raw.get("duration_s")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
            raise InvalidManifestError(f"field 'duration_s' is {_describe(duration)}, not a number of seconds")
        values["duration_s"] = float(duration)
        for name in _OPTIONAL_TEXT:
            if raw.get(name) is not None:
                values[name] = _text(raw, name)
        for name in ("started_at", "finished_at"):
            _date(values[name], name)
        if not _SHA256_RE.match(values["sha256"]):
            raise InvalidManifestError("field 'sha256' is not 64 lowercase hex digits")
        if not _VERSION_RE.match(values["pg_dump_version"]):
            raise InvalidManifestError(f"field 'pg_dump_version' is {values['pg_dump_version']!r}, not a version")
        version = raw.get("manifest_version", 1)
        if isinstance(version, bool) or version not in KNOWN_MANIFEST_VERSIONS:
            raise InvalidManifestError(
                f"manifest_version {_describe(version)} is not one this Railyard reads "
                f"({', '.join(map(str, KNOWN_MANIFEST_VERSIONS))}); a newer Railyard may have written it"
            )
        values["manifest_version"] = version
        counts = raw.get("row_counts")
        if counts is not None:
            if not isinstance(counts, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
            ):
                raise InvalidManifestError("field 'row_counts' is not an object of table names to row counts")
            values["row_counts"] = counts
        checked = raw.get("archive_checked", False)
        if not isinstance(checked, bool):
            raise InvalidManifestError(f"field 'archive_checked' is {_describe(checked)}, not true or false")
        values["archive_checked"] = checked
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise InvalidManifestError(f"field 'options' is {_describe(options)}, not an object")
        values["options"] = options
        encryption = raw.get("encryption")
        if encryption is not None:
            recipients = encryption.get("recipients", []) if isinstance(encryption, dict) else None
            if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
                raise InvalidManifestError("field 'encryption' is not an object with a list of recipients")
            values["encryption"] = encryption
        return cls(**values)

    @property
    def finished(self) -> datetime:
        return datetime.fromisoformat(self.finished_at)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)


def _describe(value: Any) -> str:
    if value is None:
        return "missing or null"
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    return f"a {type(value).__name__} ({json.dumps(value)[:40]})"


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidManifestError(f"field {name!r} is {_describe(value)}, not a non-empty string")
    return value


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidManifestError(f"field {name!r} is {_describe(value)}, not a byte count")
    return value


def _date(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidManifestError(f"field {name!r} is {value[:40]!r}, not an ISO 8601 date and time") from exc
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidManifestError(f"field {name!r} is {value[:40]!r}, which has no time zone")
    return when


INVALID = "invalid"
FOREIGN = "foreign"


@dataclass(frozen=True)
class CatalogProblem:
    """A manifest found in the layout that is not used: ``invalid`` (unreadable, wrong types, dump missing)
    or ``foreign`` (it describes another place: a copy). Never acted on, never deleted."""

    kind: str
    key: str  # where the manifest was found
    id: str  # the id its place gives it
    environment: str
    series: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Catalog:
    """What a store holds: usable backups (newest first) and the manifests that are not used."""

    location: str
    environment: str | None
    backups: list[Manifest] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)

    @property
    def invalid(self) -> list[CatalogProblem]:
        return [p for p in self.problems if p.kind == INVALID]

    @property
    def foreign(self) -> list[CatalogProblem]:
        return [p for p in self.problems if p.kind == FOREIGN]

    def by_series(self) -> dict[str, list[Manifest]]:
        """Usable backups per series name, each newest first."""
        out: dict[str, list[Manifest]] = {}
        for manifest in self.backups:
            out.setdefault(manifest.series_name, []).append(manifest)
        return dict(sorted(out.items()))

    def series_names(self) -> list[str]:
        return sorted({m.series_name for m in self.backups})

    def newest(self, series: str, now: datetime) -> Manifest | None:
        """The newest usable backup of ``series`` not dated in the future (beyond FUTURE_TOLERANCE)."""
        return next((m for m in self.backups if m.series_name == series and not is_future(m, now)), None)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """The listing a dashboard or script needs: series with their backups, and what is not used."""
        return {
            "location": self.location,
            "environment": self.environment,
            "series": [
                {
                    "name": name,
                    "latest": (newest.id if (newest := self.newest(name, now)) else None),
                    "backups": [asdict(m) | {"future": is_future(m, now)} for m in backups],
                }
                for name, backups in self.by_series().items()
            ],
            "invalid": [p.as_dict() for p in self.invalid],
            "foreign": [p.as_dict() for p in self.foreign],
        }


def is_future(manifest: Manifest, now: datetime) -> bool:
    """Dated after ``now`` plus the tolerance: a clock ahead of ours, or a lie."""
    return max(manifest.finished, manifest.started) > now + FUTURE_TOLERANCE


def read_catalog(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str | None = None,
    series: str | None = None,
    listing: Mapping[str, ObjectInfo] | None = None,
) -> Catalog:
    """Every manifest in the layout under ``location`` (optionally one environment, one series), checked.

    A manifest is used only when it is valid, records the key and id of the place it was
    read from, and its dump is there beside it with the size it records. ``listing``
    (key -> info under the same prefix) saves a second listing when the caller has one.
    """
    segments = [key_segment(environment)] if environment else []
    if environment and series:
        segments.append(key_segment(series))
    prefix = location.key(*segments)
    if listing is None:
        listing = {info.key: info for info in store.list(prefix + "/" if prefix else "")}
    catalog = Catalog(location=str(location), environment=environment)
    for key in sorted(listing):
        place = _manifest_place(location, key, environment, series)
        if place is None:
            continue
        found = _check(store, key, place, listing)
        if isinstance(found, Manifest):
            catalog.backups.append(found)
        elif found is not None:
            catalog.problems.append(found)
    catalog.backups.sort(key=lambda m: (m.finished, m.id), reverse=True)
    return catalog


def newest_usable(
    store: ObjectStore, location: StorageLocation, *, environment: str, series: str, now: datetime | None = None
) -> Manifest | None:
    """The newest usable backup of one series (not dated in the future), reading as few manifests as it can."""
    prefix = location.key(key_segment(environment), key_segment(series))
    listing = {info.key: info for info in store.list(prefix + "/")}
    now = now or datetime.now(UTC)
    # Keys sort by date folder then stamp, so the newest backups come last.
    for key in sorted(listing, reverse=True):
        place = _manifest_place(location, key, environment, series)
        if place is None:
            continue
        found = _check(store, key, place, listing)
        if isinstance(found, Manifest) and not is_future(found, now):
            return found
    return None


def _manifest_place(
    location: StorageLocation, key: str, environment: str | None, series: str | None
) -> BackupKey | None:
    """Where a manifest key says its backup is, if it is one of the wanted environment and series."""
    if not key.endswith(MANIFEST_SUFFIX):
        return None
    place = parse_backup_key(location, key[: -len(MANIFEST_SUFFIX)])
    if place is None or (environment and place.environment != environment):
        return None
    if series is not None and place.series != series:
        return None
    return place


def _check(
    store: ObjectStore, key: str, place: BackupKey, listing: Mapping[str, ObjectInfo]
) -> Manifest | CatalogProblem | None:
    """The manifest at ``key`` if it is usable, else the problem with it (None: gone since the listing)."""

    def problem(kind: str, reason: str) -> CatalogProblem:
        return CatalogProblem(kind, key, place.id, place.environment, place.series, reason)

    try:
        manifest = Manifest.from_json(store.get_bytes(key), key)
    except NotFoundError:
        return None
    except PermanentError as exc:
        return problem(INVALID, str(exc))
    recorded = (manifest.key, manifest.id, manifest.environment, manifest.series_name)
    actual = (place.key, place.id, place.environment, place.series)
    if recorded != actual:
        return problem(
            FOREIGN,
            f"manifest {key!r} describes backup {manifest.id!r} at {manifest.key!r}, not the place it was "
            "found at (a copy?); it is not used and not deleted",
        )
    if place.key not in listing:
        return problem(INVALID, f"the dump {place.key!r} of manifest {key!r} is missing; the backup cannot be restored")
    if listing[place.key].size != manifest.size:
        return problem(
            INVALID, f"the dump {place.key!r} is {listing[place.key].size} bytes but its manifest says {manifest.size}"
        )
    return manifest


def list_backups(
    store: ObjectStore,
    location: StorageLocation,
    *,
    environment: str | None = None,
    database: str | None = None,
    on_corrupt: Any = None,
) -> list[Manifest]:
    """Every usable backup (of one series when ``database`` names it), newest first.

    Manifests that are not used are reported through ``on_corrupt(key, reason)``.
    """
    catalog = read_catalog(store, location, environment=environment, series=database)
    if on_corrupt is not None:
        for problem in catalog.problems:
            on_corrupt(problem.key, problem.reason)
    return catalog.backups


class AmbiguousLatestError(PermanentError):
    """``latest`` asked for with several series and none of them the configured database's."""


def choose_latest(catalog: Catalog, *, requested: str | None, default_series: str | None, now: datetime) -> Manifest:
    """``latest``: the newest usable backup of ``requested``, else of ``default_series`` (DATABASE_URL's).

    With neither, the only series there is; several series and none of them the default
    is an error listing them, never a guess.
    """
    names = catalog.series_names()
    where = f"in environment {catalog.environment!r} at {catalog.location}"
    listed = ", ".join(names) if names else "none"
    if requested is None:
        if default_series in names or (default_series is not None and not names):
            requested = default_series
        elif len(names) == 1:
            requested = names[0]
        elif not names:
            raise NotFoundError(f"no backups {where}; run `railyard backup` first")
        else:
            raise AmbiguousLatestError(
                f"`latest` is ambiguous: there are no backups of DATABASE_URL's database {default_series!r} {where}, "
                f"but there are several series ({listed}); pass --database with one of them"
            )
    assert requested is not None
    newest = catalog.newest(requested, now)
    if newest is None:
        if requested in names:
            raise NotFoundError(
                f"every backup of {requested!r} {where} is dated in the future (a clock ahead?); "
                "name one by its id instead of `latest`"
            )
        raise NotFoundError(f"no backups of {requested!r} {where}; series with backups: {listed}")
    return newest


def find_backup(
    store: ObjectStore,
    location: StorageLocation,
    backup_id: str,
    *,
    environment: str,
    database: str | None = None,
    default_series: str | None = None,
    now: datetime | None = None,
) -> Manifest:
    """The usable backup named ``backup_id``, or for ``latest`` the one :func:`choose_latest` picks."""
    catalog = read_catalog(store, location, environment=environment)
    if backup_id == "latest":
        return choose_latest(catalog, requested=database, default_series=default_series, now=now or datetime.now(UTC))
    for manifest in catalog.backups:
        if manifest.id == backup_id and (database is None or manifest.series_name == database):
            return manifest
    for problem in catalog.problems:
        if problem.id == backup_id:
            raise PermanentError(f"backup {backup_id!r} is not used: {problem.reason}")
    raise NotFoundError(
        f"no backup {backup_id!r} in environment {environment!r} at {location}; `railyard backups list` shows the ids"
    )
