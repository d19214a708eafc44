"""Where a backup can be read from: the primary store (BACKUP_STORAGE_URL), then the copy.

Restore and verify read the primary first and fall back to the copy (BACKUP_COPY_STORAGE_URL)
when the primary has lost the backup or its dump fails its checksum.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from jobs.backup.catalog import AmbiguousLatestError, Manifest, find_backup
from jobs.backup.copy_config import CopyConfig
from jobs.backup.series import default_series
from railyard.core.errors import RailyardError
from railyard.core.settings import Settings
from railyard.core.storage import ObjectStore, StorageLocation, open_backup_store

log = structlog.get_logger()

PRIMARY = "primary"
COPY = "copy"


@dataclass(frozen=True)
class Destination:
    name: str  # PRIMARY or COPY
    store: ObjectStore
    location: StorageLocation


@dataclass(frozen=True)
class Found:
    """One backup as one destination holds it."""

    destination: Destination
    manifest: Manifest

    @property
    def where(self) -> str:
        return self.destination.name


def destinations(settings: Settings) -> list[Destination]:
    """The primary store, and the copy when BACKUP_COPY_STORAGE_URL is set."""
    found = [Destination(PRIMARY, *open_backup_store(settings))]
    config = CopyConfig.from_env()
    if config is not None:
        found.append(Destination(COPY, config.open_store(settings), config.location))
    return found


def find_everywhere(settings: Settings, backup_id: str, *, database: str | None = None) -> list[Found]:
    """The backup ``backup_id`` (or ``latest``) in each destination that has it usable, primary first.

    ``latest`` is the newest across both: a copy newer than anything left in the primary wins.
    Raises the primary's error when no destination has it.
    """
    found: list[Found] = []
    errors: list[RailyardError] = []
    every = destinations(settings)
    for destination in every:
        try:
            manifest = find_backup(
                destination.store,
                destination.location,
                backup_id,
                environment=settings.environment,
                database=database,
                default_series=default_series(settings),
            )
        except AmbiguousLatestError:
            raise
        except RailyardError as exc:  # a lost bucket or an outage at one destination leaves the other
            if len(every) > 1:  # with one destination, the error raised below says it all
                log.warning("backup_not_at_destination", destination=destination.name, id=backup_id, reason=str(exc))
            errors.append(exc)
            continue
        found.append(Found(destination, manifest))
    if not found:
        raise errors[0]
    if backup_id == "latest":
        newest = max(found, key=lambda f: (f.manifest.finished, f.manifest.id))
        found = [f for f in found if f.manifest.id == newest.manifest.id]
    return found
