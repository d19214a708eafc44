"""Parse a storage URL (``s3://bucket/prefix``, ``file:///path`` or a path) and open it; open the backup store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from railyard.core.storage.access import S3Access
from railyard.core.storage.base import ObjectStore
from railyard.core.storage.lock import ObjectLock, object_lock_from_env

if TYPE_CHECKING:
    from railyard.core.settings import Settings


@dataclass(frozen=True)
class StorageLocation:
    """A container (bucket or directory) plus a key prefix inside it."""

    scheme: str  # "s3" or "file"
    container: str  # bucket name, or directory path
    prefix: str  # no leading or trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> StorageLocation:
        parts = urlsplit(url)
        if parts.scheme == "s3":
            return cls("s3", parts.netloc, parts.path.strip("/"))
        if parts.scheme == "file":
            return cls("file", unquote(parts.path) or "/", "")
        return cls("file", url, "")

    def key(self, *segments: str) -> str:
        """Join ``segments`` under this location's prefix."""
        return "/".join(s.strip("/") for s in (self.prefix, *segments) if s.strip("/"))

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.container}/{self.prefix}".rstrip("/")
        return self.container


def open_store(
    location: StorageLocation | str,
    *,
    addressing_style: str = "auto",
    lock: ObjectLock | None = None,
    access: S3Access | None = None,
) -> ObjectStore:
    """The backend for ``location``; S3 settings come from boto3's environment variables.

    With ``lock`` (S3_OBJECT_LOCK, for the backup store) every object is written locked, and
    the store's check fails where the lock cannot be honoured. ``access`` replaces boto3's
    variables (the copy destination's own credentials).
    """
    if isinstance(location, str):
        location = StorageLocation.parse(location)
    if location.scheme == "s3":
        from railyard.core.storage.s3 import S3Store

        return S3Store(
            location.container, addressing_style=addressing_style, prefix=location.prefix, lock=lock, access=access
        )
    from railyard.core.storage.local import LocalStore

    return LocalStore(location.container, lock_requested=lock is not None)


def open_backup_store(settings: Settings, *, locked: bool = False) -> tuple[ObjectStore, StorageLocation]:
    """The backup store (BACKUP_STORAGE_URL) and its location.

    ``locked`` for what writes or deletes backups (the backup and prune jobs, the health check):
    with S3_OBJECT_LOCK set, objects are written locked and the store's check requires the lock.
    """
    location = StorageLocation.parse(settings.backup_storage_url)
    lock = object_lock_from_env() if locked else None
    return open_store(location, addressing_style=settings.s3_addressing_style, lock=lock), location
